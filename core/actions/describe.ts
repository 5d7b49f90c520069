/** Actions described in Home Assistant's `get_services` shape, generated from their schemas. */
import type { ActionDescription } from './index.js';

interface JsonSchema {
  type?: string | string[];
  description?: string;
  examples?: unknown[];
  default?: unknown;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  properties?: Record<string, JsonSchema>;
  required?: string[];
}

export interface ServiceField {
  required: boolean;
  description: string;
  example?: unknown;
  default?: unknown;
  /** A Home Assistant selector, so HA-style editors render a fitting input. */
  selector: Record<string, unknown>;
}

export interface ServiceDescription {
  name: string;
  description: string;
  fields: Record<string, ServiceField>;
  target?: { entity: { domain?: string }[] };
  response?: { optional: boolean };
}

function selectorFor(schema: JsonSchema): Record<string, unknown> {
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  if (schema.enum) return { select: { options: schema.enum } };
  if (type === 'number' || type === 'integer') {
    return { number: { ...(schema.minimum !== undefined && { min: schema.minimum }), ...(schema.maximum !== undefined && { max: schema.maximum }) } };
  }
  if (type === 'boolean') return { boolean: {} };
  if (type === 'string') return { text: {} };
  return { object: {} };
}

function describeAction(action: ActionDescription): ServiceDescription {
  const schema = action.fields as JsonSchema;
  const required = new Set(schema.required ?? []);
  const fields = Object.fromEntries(
    Object.entries(schema.properties ?? {}).map(([name, field]): [string, ServiceField] => [
      name,
      {
        required: required.has(name),
        description: field.description ?? '',
        ...(field.examples?.length && { example: field.examples[0] }),
        ...(field.default !== undefined && { default: field.default }),
        selector: selectorFor(field),
      },
    ]),
  );
  return {
    name: action.name.replaceAll('_', ' '),
    description: action.description,
    fields,
    ...(action.target && { target: { entity: [action.target.domain ? { domain: action.target.domain } : {}] } }),
    ...(action.response !== 'none' && { response: { optional: action.response === 'optional' } }),
  };
}

/** `{domain: {action: description}}`, as the WebSocket `get_services` answers. */
export function servicesByDomain(actions: ActionDescription[]): Record<string, Record<string, ServiceDescription>> {
  const result: Record<string, Record<string, ServiceDescription>> = {};
  for (const action of actions) (result[action.domain] ??= {})[action.name] = describeAction(action);
  return result;
}
