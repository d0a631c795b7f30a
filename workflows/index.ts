// The worker's workflowsPath: every workflow the bridge runs.
export { containerRunWorkflow } from './container-run';
