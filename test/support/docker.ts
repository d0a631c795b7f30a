import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';

const PROJECT_ROOT = path.join(__dirname, '..', '..');

/** Debian's client (matches its dockerd 20.10) when installed, else whatever `docker` is on PATH. */
export const DOCKER = existsSync('/usr/bin/docker') ? '/usr/bin/docker' : 'docker';

export const AGENT_IMAGE = 'armorclaw/agent:v1';

export interface DockerResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the docker CLI; resolves with its exit code and output (never rejects on exit code). */
export function docker(
  args: string[],
  opts: { timeoutMs?: number; input?: string } = {},
): Promise<DockerResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(DOCKER, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code: code ?? (signal ? 128 : -1), stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

const HOW_TO_FIX =
  'run `bash scripts/docker.sh` (CI does it through `bash scripts/setup.sh --test`)';

/**
 * Makes sure a Docker engine answers. Tests that need Docker call it first; it throws, never
 * skips: a suite that silently skips its Docker tests proves nothing, in CI or locally.
 */
export async function ensureDocker(): Promise<true> {
  const info = await docker(['info'], { timeoutMs: 15_000 }).catch((err: Error) => ({
    code: -1,
    stdout: '',
    stderr: err.message,
  }));
  if (info.code !== 0) {
    // `docker info` says little on stderr when the daemon is away; `docker version` says why.
    const version = await docker(['version', '--format', '{{.Server.Version}}'], {
      timeoutMs: 15_000,
    }).catch((err: Error) => ({ code: -1, stdout: '', stderr: err.message }));
    const why = (version.stderr || info.stderr).trim().split('\n')[0] || 'docker info failed';
    throw new Error(
      `No Docker engine answers (${DOCKER}: ${why}); ${HOW_TO_FIX}.` +
        (process.env.CI === 'true'
          ? ' CI must provide Docker: this test fails, it never skips.'
          : ''),
    );
  }
  return true;
}

/**
 * Makes sure the reference agent image exists and was built from the current agent sources
 * (scripts/docker.sh builds it; scripts/build-agent-image.sh --print-hash names the sources).
 */
export async function ensureAgentImage(image = AGENT_IMAGE): Promise<string> {
  await ensureDocker();
  const r = await docker([
    'image',
    'inspect',
    '--format',
    '{{.Id}} {{ index .Config.Labels "armorclaw.agent.hash" }}',
    image,
  ]);
  if (r.code !== 0) throw new Error(`Docker image ${image} is missing; ${HOW_TO_FIX}.`);
  const [id = '', label = ''] = r.stdout.trim().split(' ');
  const want = execFileSync(
    'bash',
    [path.join(PROJECT_ROOT, 'scripts', 'build-agent-image.sh'), '--print-hash'],
    {
      encoding: 'utf8',
    },
  ).trim();
  if (label !== want) {
    throw new Error(`Docker image ${image} was built from other agent sources; ${HOW_TO_FIX}.`);
  }
  return id;
}
