/**
 * The Docker engine client. dockerode's modem requires ssh2 at load time for `ssh://` hosts,
 * and ssh2 instantiates a WebAssembly module with a 16 MB heap as it loads, held for the life
 * of the process. The bridge only talks to a Unix socket, so the modem's SSH transport is
 * replaced by one that refuses, before dockerode is first loaded.
 */
import Module from 'node:module';
import path from 'node:path';
import type Docker from 'dockerode';

function withoutSshTransport(): void {
  const modemDir = path.dirname(
    require.resolve('docker-modem/package.json', { paths: [require.resolve('dockerode')] }),
  );
  const sshFile = path.join(modemDir, 'lib', 'ssh.js');
  if (require.cache[sshFile]) return;
  const stub = new Module(sshFile);
  stub.filename = sshFile;
  stub.loaded = true;
  stub.exports = () => {
    throw new Error('Docker over SSH is not supported: set docker.socket to the engine socket');
  };
  require.cache[sshFile] = stub;
}

/** A client of the engine on `socketPath`. */
export function connectDocker(socketPath: string): Docker {
  withoutSshTransport();
  const DockerClient = require('dockerode') as typeof Docker;
  return new DockerClient({ socketPath });
}
