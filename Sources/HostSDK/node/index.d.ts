// Types of miniapp-host (see index.js).
export interface Notification { method: string; params: Record<string, unknown>; }
export interface Call {
  id: unknown;
  method: string;
  params: Record<string, unknown>;
  program: { id: string; version: string };
  workerId: string;
  /** Aborted when the daemon gives up on the call (its timeout passed, or the worker exited). */
  signal: AbortSignal;
}
export type Handler = (call: Call) => Promise<unknown> | unknown;
export interface ConnectOptions {
  callTimeoutMs?: number; reconnect?: boolean; maxReconnectAttempts?: number;
  reconnectInitialMs?: number; reconnectMaxMs?: number; maxLineBytes?: number;
}
export class HostError extends Error {
  constructor(code: string, message: string, data?: Record<string, unknown>, rpcCode?: number);
  code: string;
  data: Record<string, unknown>;
  rpcCode?: number;
}
export class Host {
  readonly path: string;
  call(method: string, params?: Record<string, unknown>, timeoutMs?: number): Promise<any>;
  provide(methods: string[], handler: Handler): Promise<void>;
  notifications(): AsyncIterableIterator<Notification>;
  close(): Promise<void>;
  daemonInfo(): Promise<any>;
  install(path: string, allowDowngrade?: boolean): Promise<{ id: string; version: string; active: boolean }>;
  packages(): Promise<any[]>;
  rollback(id: string): Promise<{ id: string; active: string }>;
  remove(id: string): Promise<void>;
  launch(id: string, args?: string[]): Promise<{ workerId: string; id: string; version: string; pid: number; startMicros: number; warm?: boolean }>;
  stop(workerId: string, graceMillis?: number, timeoutMs?: number): Promise<number>;
  suspend(workerId: string): Promise<void>;
  resume(workerId: string): Promise<void>;
  workers(): Promise<any[]>;
  send(workerId: string, name: string, data?: unknown): Promise<void>;
  setSession(userId: string, claims?: Record<string, unknown>): Promise<void>;
  subscribeInspector(programId?: string): Promise<void>;
  refreshPermissions(): Promise<any>;
  checkUpdates(id?: string): Promise<any[]>;
  prewarm(id: string): Promise<{ workerId: string }>;
  restart(id: string): Promise<{ workerId: string; version: string }>;
}
export function connect(path: string, options?: ConnectOptions): Promise<Host>;
