// Test tiers (see docs/architecture.md#test-tiers). Each tier is a jest project so one can be run alone:
// `npx jest --selectProjects unit`.
const transform = {
  '^.+\\.(t|j)sx?$': [
    '@swc/jest',
    { jsc: { parser: { syntax: 'typescript' }, target: 'es2022' }, module: { type: 'commonjs' } },
  ],
};

const project = (name, extra = {}) => ({
  displayName: name,
  testEnvironment: 'node',
  transform,
  testMatch: [`<rootDir>/test/${name}/**/*.test.ts`],
  ...extra,
});

module.exports = {
  projects: [
    project('unit'),
    project('workflows'),
    project('replay'),
    project('integration'),
    project('e2e'),
  ],
  testTimeout: 60_000,
  // The Temporal SDK's native runtime (replay and workflow tests) keeps threads alive after its
  // last worker is gone; without this jest would wait on them forever instead of exiting.
  forceExit: true,
};
