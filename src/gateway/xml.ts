// S3 XML in and out. Responses are plain objects turned into XML (arrays become repeated
// elements, undefined fields are left out); request bodies are parsed into plain objects of
// strings, and anything that is not well-formed XML is a MalformedXML error.
import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';

export const S3_NAMESPACE = 'http://s3.amazonaws.com/doc/2006-03-01/';

/** Request bodies of configuration calls are small; this bounds what we buffer. */
export const MAX_XML_BODY_BYTES = 1024 * 1024;

export type XmlValue = string | number | boolean | Date | undefined | null | XmlObject | XmlValue[];
export interface XmlObject { [element: string]: XmlValue }

const builder = new XMLBuilder({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  suppressEmptyNode: false,
  processEntities: true,
});

function normalise(value: XmlValue): unknown {
  if (value instanceof Date) return value.toISOString();
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  if (Array.isArray(value)) return value.filter((v) => v !== undefined && v !== null).map(normalise);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [name, child] of Object.entries(value)) {
      if (child !== undefined && child !== null) out[name] = normalise(child);
    }
    return out;
  }
  return value;
}

/** `<?xml ...?><Root xmlns="...">...</Root>`; pass `namespace: false` for error documents. */
export function buildXml(root: string, body: XmlObject, options: { namespace?: boolean } = {}): string {
  const content = normalise(body) as Record<string, unknown>;
  if (options.namespace !== false) content['@_xmlns'] = S3_NAMESPACE;
  return `<?xml version="1.0" encoding="UTF-8"?>\n${builder.build({ [root]: content }) as string}`;
}

/** A parsed element: text is a string, children are objects, repeated elements are arrays. */
export type ParsedXml = { [element: string]: ParsedXml | ParsedXml[] | string | string[] };

export class MalformedXmlError extends Error {}

/**
 * Parse a request body. `arrays` names elements that must always come back as arrays
 * (e.g. `Object` in DeleteObjects) even when they occur once.
 */
export function parseXml(body: Buffer | string, arrays: readonly string[] = []): ParsedXml {
  const text = typeof body === 'string' ? body : body.toString('utf8');
  // No DTDs: they are not part of any S3 schema and are the door to entity-expansion attacks.
  if (text.trim() === '' || /<!DOCTYPE|<!ENTITY/i.test(text) || XMLValidator.validate(text) !== true) {
    throw new MalformedXmlError('not well-formed XML');
  }
  const arraySet = new Set(arrays);
  const parser = new XMLParser({
    ignoreAttributes: true,
    removeNSPrefix: true,
    parseTagValue: false,
    trimValues: false, // key names may start or end with spaces
    processEntities: true,
    ignoreDeclaration: true,
    isArray: (name) => arraySet.has(name),
  });
  let parsed: ParsedXml;
  try {
    parsed = parser.parse(text) as ParsedXml;
  } catch (err) {
    // The parser's own limits (e.g. nesting depth) refuse documents the validator let through.
    throw new MalformedXmlError(err instanceof Error ? err.message : 'not well-formed XML');
  }
  return stripWhitespaceText(parsed) as ParsedXml;
}

/** Without trimming, indentation between elements shows up as `#text`; it carries no meaning. */
function stripWhitespaceText(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(stripWhitespaceText);
  if (node === null || typeof node !== 'object') return node;
  const out: Record<string, unknown> = {};
  for (const [name, child] of Object.entries(node)) {
    if (name === '#text') continue;
    out[name] = stripWhitespaceText(child);
  }
  return out;
}

/** The text of a child element, or undefined. An empty element reads as ''. */
export function xmlText(node: ParsedXml | undefined, name: string): string | undefined {
  const value = node?.[name];
  if (value === undefined) return undefined;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) throw new MalformedXmlError(`${name} occurs more than once`);
  return Object.keys(value).length === 0 ? '' : undefined;
}

/** A child element that must be an element (not text); undefined when absent. */
export function xmlChild(node: ParsedXml | undefined, name: string): ParsedXml | undefined {
  const value = node?.[name];
  if (value === undefined) return undefined;
  if (typeof value === 'string') return value === '' ? {} : undefined;
  if (Array.isArray(value)) throw new MalformedXmlError(`${name} occurs more than once`);
  return value;
}

/** Child elements declared in `arrays` when parsing. */
export function xmlChildren(node: ParsedXml | undefined, name: string): ParsedXml[] {
  const value = node?.[name];
  if (value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  // An empty element parses as ''; it is an element with no children.
  return list.map((item) => (typeof item === 'string' ? {} : item)) as ParsedXml[];
}
