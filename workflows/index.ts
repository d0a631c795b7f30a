// The worker's workflowsPath: every workflow the bridge runs.
export { containerRunWorkflow } from './container-run';
export { matrixSyncWorkflow } from './matrix-sync';
export { matrixSendWorkflow } from './matrix-send';
export { budgetWorkflow } from './budget';
export { callAdmissionWorkflow } from './admission';
export { voiceCallWorkflow } from './voice-call';
export { agentTurnWorkflow } from './agent-turn';
export { approvalWorkflow } from './approval';
export { incidentWorkflow } from './incident';
