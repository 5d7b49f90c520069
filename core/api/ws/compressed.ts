/**
 * The compressed entity messages of `subscribe_entities`, as Home Assistant sends them and
 * home-assistant-js-websocket reads them: `a` adds, `c` changes, `r` removes; `s` state,
 * `a` attributes, `c` context (its id alone when it has no parent or user), `lc`/`lu` epoch seconds.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Context } from '../../bus/index.js';
import type { State } from '../../states/index.js';

export interface CompressedState {
  s: string;
  a: Record<string, unknown>;
  c: Context | string;
  lc: number;
  lu?: number;
}

export interface CompressedDiff {
  '+'?: Partial<CompressedState>;
  '-'?: { a: string[] };
}

const seconds = (iso: string) => Date.parse(iso) / 1000;
const compactContext = (c: Context) => (c.parent_id === null && c.user_id === null ? c.id : c);

export function compressState(state: State): CompressedState {
  const compressed: CompressedState = {
    s: state.state,
    a: state.attributes,
    c: compactContext(state.context),
    lc: seconds(state.last_changed),
  };
  if (state.last_updated !== state.last_changed) compressed.lu = seconds(state.last_updated);
  return compressed;
}

export function diffStates(old: State, next: State): CompressedDiff {
  const added: Partial<CompressedState> = { c: compactContext(next.context) };
  if (old.state !== next.state) {
    added.s = next.state;
    added.lc = seconds(next.last_changed);
  } else {
    added.lu = seconds(next.last_updated);
  }
  const changedAttributes = Object.fromEntries(
    Object.entries(next.attributes).filter(([key, value]) => !isDeepStrictEqual(old.attributes[key], value)),
  );
  if (Object.keys(changedAttributes).length > 0) added.a = changedAttributes;
  const removed = Object.keys(old.attributes).filter((key) => !(key in next.attributes));
  return removed.length > 0 ? { '+': added, '-': { a: removed } } : { '+': added };
}
