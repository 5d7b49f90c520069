/**
 * The little of Node-RED's and Express's APIs the hub uses. Neither ships types (Node-RED has
 * none; @types/express would pull a tree of others for three calls).
 */
declare module 'node-red' {
  import type { IncomingMessage, Server, ServerResponse } from 'node:http';

  /** An Express application: a request handler with sub-apps. */
  type Handler = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => void;

  interface NodeRed {
    init(server: Server, settings: Record<string, unknown>): void;
    start(): Promise<void>;
    stop(): Promise<void>;
    readonly httpAdmin: Handler;
    readonly httpNode: Handler;
    readonly runtime: {
      flows: {
        setFlows(options: { flows?: unknown; deploymentType?: 'full' | 'reload'; user?: unknown }): Promise<{ rev: string }>;
        getFlows(options: { user?: unknown }): Promise<{ flows: unknown[]; rev: string }>;
      };
      nodes: {
        setModuleState(options: { module: string; enabled: boolean }): Promise<unknown>;
      };
    };
  }
  const RED: NodeRed;
  export default RED;
}

declare module 'express' {
  import type { IncomingMessage, ServerResponse } from 'node:http';

  type Handler = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => void;

  /** A request as Express hands it to middleware: `path` is relative to the mount point. */
  export interface Request extends IncomingMessage {
    readonly path: string;
  }
  export type NextFunction = (error?: unknown) => void;
  type Middleware = (req: Request, res: ServerResponse, next: NextFunction) => void;

  interface Application extends Handler {
    use(path: string, ...handlers: (Handler | Middleware)[]): Application;
  }
  function express(): Application;
  export default express;
}
