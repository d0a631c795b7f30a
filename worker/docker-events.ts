import type { Client } from '@temporalio/client';
import type Docker from 'dockerode';
import type { Logger } from 'pino';
import { MANAGED_LABEL } from '../activities/docker';
import { isPoolName } from '../activities/warm-pool';
import { containerExitedSignal, containerWorkflowId } from '../workflows/definitions';

interface DockerEvent {
  Type?: string;
  Action?: string;
  Actor?: { ID?: string; Attributes?: Record<string, string> };
}

/**
 * Turns Docker `die` events of managed containers into `container-exited` signals, so a dead
 * agent reaches its workflow within a second. The workflow's periodic inspect stays the
 * guarantee for deaths this watcher misses (bridge down, stream broken).
 */
export class DockerEventWatcher {
  private stream?: NodeJS.ReadableStream & { destroy?: () => void };
  private stopped = false;
  private retryMs = 250;

  constructor(
    private readonly docker: Docker,
    private readonly client: Client,
    private readonly log: Logger,
    /** Told of every managed container's death first (the warm pool replaces its own). */
    private readonly onDie?: (containerName: string) => void,
  ) {}

  async start(): Promise<void> {
    await this.connect();
  }

  stop(): void {
    this.stopped = true;
    this.stream?.destroy?.();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    try {
      const stream = (await this.docker.getEvents({
        filters: JSON.stringify({
          type: ['container'],
          event: ['die'],
          label: [`${MANAGED_LABEL}=true`],
        }),
      })) as NodeJS.ReadableStream & { destroy?: () => void };
      this.stream = stream;
      this.retryMs = 250;
      let buffered = '';
      stream.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('utf8');
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, nl).trim();
          buffered = buffered.slice(nl + 1);
          if (line) void this.onEvent(line);
        }
      });
      const reconnect = () => {
        if (this.stream !== stream) return;
        this.stream = undefined;
        this.scheduleReconnect();
      };
      stream.once('end', reconnect);
      stream.once('close', reconnect);
      stream.once('error', reconnect);
    } catch (err) {
      this.log.warn({ err }, 'docker events unavailable; retrying');
      this.scheduleReconnect();
    }
  }

  private scheduleReconnect(): void {
    if (this.stopped) return;
    const wait = this.retryMs;
    this.retryMs = Math.min(this.retryMs * 2, 10_000);
    setTimeout(() => void this.connect(), wait).unref();
  }

  private async onEvent(line: string): Promise<void> {
    let event: DockerEvent;
    try {
      event = JSON.parse(line);
    } catch {
      return;
    }
    const name = event.Actor?.Attributes?.name;
    if (event.Action !== 'die' || !name) return;
    this.onDie?.(name);
    if (isPoolName(name)) return;
    const exitCode = Number.parseInt(event.Actor?.Attributes?.exitCode ?? '-1', 10);
    let oomKilled = false;
    try {
      oomKilled = (await this.docker.getContainer(name).inspect()).State.OOMKilled;
    } catch {
      // Already removed (our own teardown): the exit code is enough.
    }
    try {
      await this.client.workflow
        .getHandle(containerWorkflowId(name))
        .signal(containerExitedSignal, { exitCode, oomKilled });
      this.log.info({ containerName: name, exitCode, oomKilled }, 'container died');
    } catch (err) {
      // The run has already finished (a stop we asked for): nothing is owed.
      this.log.debug({ err, containerName: name }, 'container exit not delivered');
    }
  }
}
