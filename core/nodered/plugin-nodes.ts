/**
 * Node-RED node packages that plugins contribute (`ctx.nodeRed.nodes(dir)`). Their directories
 * are given to Node-RED when it starts; a plugin that stops has its node types disabled (gone
 * from the palette) and enabled again when it starts.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Logger } from '../log/index.js';

export class PluginNodes {
  /** Node package name → its directory. */
  readonly #packages = new Map<string, string>();
  #setState: ((module: string, enabled: boolean) => Promise<unknown>) | undefined;

  constructor(private readonly log: Logger) {}

  /** Registers a node package directory; returns its package name (Node-RED's module name). */
  add(dir: string): string {
    const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: unknown; 'node-red'?: unknown };
    if (typeof manifest.name !== 'string' || !manifest['node-red']) {
      throw new TypeError(`${dir}/package.json must have a name and a "node-red" section`);
    }
    this.#packages.set(manifest.name, dir);
    return manifest.name;
  }

  /** Directories for Node-RED's `nodesDir` setting. */
  dirs(): string[] {
    return [...this.#packages.values()];
  }

  /** Called once Node-RED runs: from now on, enabling and disabling reach its palette. */
  attach(setState: (module: string, enabled: boolean) => Promise<unknown>): void {
    this.#setState = setState;
  }

  /** Shows or hides a package's node types; before Node-RED runs there is nothing to do. */
  async setEnabled(module: string, enabled: boolean): Promise<void> {
    await this.#setState?.(module, enabled).catch((error: unknown) => this.log.warn({ err: error, module, enabled }, 'node-red nodes not switched'));
  }
}
