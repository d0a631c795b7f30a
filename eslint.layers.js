// @ts-check
/**
 * Which top-level folder may import which: each layer imports only the layers below it, so a
 * change low in the stack never has to know who sits above it, and no two modules need each
 * other. docs/architecture.md explains each layer; this table is what the lint enforces.
 */
const path = require('node:path');

/**
 * folder → the project folders its production code may import (besides its own). formats/ is
 * the floor: pure parsers that import nothing, so every layer may use them.
 */
const domain = ['formats', 'machines', 'services', 'config', 'matrix', 'media'];
const layers = {
  formats: [],
  machines: ['formats'],
  services: ['formats'],
  config: ['formats'],
  matrix: ['formats', 'services'],
  media: ['formats', 'services', 'machines'],
  proxy: ['formats', 'services'],
  // Workflow code may also import services/budget (pure arithmetic, sandbox-safe) and activity
  // types; the workflow sandbox rule in eslint.config.js holds it to types and pure modules.
  workflows: ['formats', 'machines', 'activities', 'services'],
  sessions: ['formats', 'workflows', 'machines', 'services', 'config'],
  activities: [...domain, 'sessions', 'workflows', 'proxy'],
  rpc: [...domain, 'sessions', 'workflows', 'proxy'],
  // The HTTP gateway: its own guards and methods, and the socket API's methods re-exposed.
  gateway: [...domain, 'sessions', 'workflows', 'proxy', 'rpc'],
  // Paired devices: pairing, the device socket and its operations, on top of the gateway.
  devices: [...domain, 'sessions', 'workflows', 'proxy', 'rpc', 'gateway'],
  // The relay (`armorclaw relay`, run on a public host): forwards device traffic to a bridge's
  // outbound link; the device pages are its only use of devices/.
  relay: ['formats', 'services', 'devices'],
  agent: ['formats', 'media', 'rpc'],
  cli: ['formats', 'services', 'config', 'rpc', 'relay'],
  worker: [...domain, 'sessions', 'workflows', 'activities', 'rpc', 'proxy', 'gateway', 'devices'],
};

/**
 * Narrower rules inside a permitted pair: the agent runs in its container with only the JSON
 * framing of rpc/, and workflows see only the sandbox-safe part of services/.
 */
const onlyFiles = {
  'agent→rpc': ['framer.ts'],
  'workflows→services': ['budget.ts'],
};

const folders = Object.keys(layers);

/** ESLint config blocks: the layer zones and no import cycles in production code. */
function layerConfigs(importX) {
  const zones = [];
  for (const target of folders) {
    for (const from of folders) {
      if (from === target) continue;
      const allowed = layers[target].includes(from);
      const only = onlyFiles[`${target}→${from}`];
      if (allowed && !only) continue;
      zones.push({
        target: `./${target}`,
        from: `./${from}`,
        ...(only ? { except: only.map((f) => `./${f}`) } : {}),
        message: allowed
          ? `${target}/ may import only ${only.join(', ')} from ${from}/ (eslint.layers.js)`
          : `${target}/ may not import ${from}/: layers import downward only (eslint.layers.js, docs/architecture.md)`,
      });
    }
  }
  const production = folders.map((f) => `${f}/**/*.ts`);
  return [
    {
      files: production,
      plugins: { 'import-x': importX },
      settings: {
        // Dependencies are parsed as TypeScript too, so cycles through .ts files are seen.
        'import-x/extensions': ['.ts', '.js'],
        'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
        'import-x/resolver-next': [
          importX.createNodeResolver({ extensions: ['.ts', '.js', '.json'] }),
        ],
      },
      rules: {
        'import-x/no-restricted-paths': ['error', { basePath: path.resolve(__dirname), zones }],
        'import-x/no-cycle': ['error', { ignoreExternal: true }],
      },
    },
  ];
}

module.exports = { layers, layerConfigs };
