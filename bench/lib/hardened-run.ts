import type Docker from 'dockerode';

/**
 * `docker run -d` arguments that create the container a Docker create spec describes: for
 * baselines that run the bridge's hardened agent container by hand. Give it the bridge's own
 * spec (`containerSpec` in activities/docker.ts) and the baseline has exactly the bridge's
 * flags and mounts, whatever they become. A field of the spec it does not know how to say on
 * the command line is an error, never silently dropped: a baseline lighter than the bridge's
 * container would flatter the bridge.
 *
 * `labels` replaces the spec's labels: the bridge's (`armorclaw.managed`, `armorclaw.host`)
 * would let a bridge's Docker event watcher and orphan reaper take the baseline's containers
 * for runs of its own.
 */
export function dockerRunArgsFromSpec(
  spec: Docker.ContainerCreateOptions,
  labels: Record<string, string>,
): string[] {
  const known = new Set([
    'name',
    'Image',
    'User',
    'Env',
    'Labels',
    'NetworkDisabled',
    'HostConfig',
  ]);
  const knownHost = new Set([
    'ReadonlyRootfs',
    'CapDrop',
    'SecurityOpt',
    'PidsLimit',
    'Memory',
    'MemorySwap',
    'Tmpfs',
    'Init',
    'NetworkMode',
    'PortBindings',
    'PublishAllPorts',
    'Privileged',
    'RestartPolicy',
    'LogConfig',
    'Binds',
  ]);
  const h = spec.HostConfig ?? {};
  const unknown = [
    ...Object.keys(spec).filter((k) => !known.has(k)),
    ...Object.keys(h).filter((k) => !knownHost.has(k)),
  ];
  if (unknown.length > 0) {
    throw new Error(`dockerRunArgsFromSpec: no docker run flag for ${unknown.join(', ')}`);
  }
  if (!spec.name || !spec.Image) throw new Error('dockerRunArgsFromSpec: the spec has no name');
  if (Object.keys(h.PortBindings ?? {}).length > 0 || h.PublishAllPorts || h.Privileged) {
    throw new Error('dockerRunArgsFromSpec: published ports or privileged mode are not expected');
  }
  const args = ['run', '-d', '--name', spec.name];
  if (spec.User) args.push('--user', spec.User);
  for (const env of spec.Env ?? []) args.push('--env', env);
  for (const [k, v] of Object.entries(labels)) args.push('--label', `${k}=${v}`);
  if (h.ReadonlyRootfs) args.push('--read-only');
  for (const cap of h.CapDrop ?? []) args.push('--cap-drop', cap);
  for (const opt of h.SecurityOpt ?? []) args.push('--security-opt', opt);
  if (h.PidsLimit !== undefined && h.PidsLimit !== null)
    args.push('--pids-limit', String(h.PidsLimit));
  // Plain numbers are bytes to the docker CLI.
  if (h.Memory) args.push('--memory', String(h.Memory));
  if (h.MemorySwap) args.push('--memory-swap', String(h.MemorySwap));
  for (const [target, opts] of Object.entries(h.Tmpfs ?? {})) {
    args.push('--tmpfs', opts ? `${target}:${opts}` : target);
  }
  if (h.Init) args.push('--init');
  const network = h.NetworkMode ?? (spec.NetworkDisabled ? 'none' : undefined);
  if (network) args.push('--network', network);
  if (h.RestartPolicy?.Name) args.push('--restart', h.RestartPolicy.Name);
  if (h.LogConfig?.Type) args.push('--log-driver', h.LogConfig.Type);
  for (const [k, v] of Object.entries(h.LogConfig?.Config ?? {}))
    args.push('--log-opt', `${k}=${v}`);
  for (const bind of h.Binds ?? []) args.push('--volume', bind);
  args.push(spec.Image);
  return args;
}
