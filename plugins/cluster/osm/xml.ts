/**
 * OSM XML (API 0.6 / osmconvert / Osmosis / JOSM / Overpass `[out:xml]`) → `OsmExtract`.
 *
 * A small strict parser of the subset OSM files use: elements, attributes in either quote,
 * the five predefined entities and character references, comments, the XML declaration and
 * CDATA. Elements other than `osm`, `bounds`, `node`, `way`, `nd` and `tag` are checked for
 * well-formedness and otherwise ignored. A DOCTYPE is refused: OSM files never have one, and
 * refusing it rules out entity-expansion tricks.
 *
 * @module
 */
import { checkId, checkLonLat, ExtractBuilder, OsmFormatError, validLonLat, type OsmExtract } from './features.js';

const NAME = /[A-Za-z_:][-A-Za-z0-9_:.]*/y;
const ATTRIBUTE = /\s+([A-Za-z_:][-A-Za-z0-9_:.]*)\s*=\s*(?:"([^"<]*)"|'([^'<]*)')/y;
const TAG_END = /\s*(\/?)>/y;
const END_TAG = /<\/([A-Za-z_:][-A-Za-z0-9_:.]*)\s*>/y;
const NOT_SPACE = /[^ \t\r\n]/;

type Attributes = Map<string, string>;

interface OpenElement {
  name: string;
  node?: { id: number; lon: number; lat: number; tags: Record<string, string> | null; skip: boolean };
  way?: { id: number; refs: number[]; tags: Record<string, string>; skip: boolean };
}

/**
 * Reads an OSM XML document.
 *
 * @throws {OsmFormatError} when the text is not well-formed XML, its root is not `<osm>`, or an
 *   element lacks an attribute OSM requires (node id/lat/lon, way id, nd ref, tag k/v).
 * @example
 * const extract = readOsmXml(readFileSync('street.osm', 'utf8'));
 * extract.roads.features.length;
 */
export function readOsmXml(xml: string): OsmExtract {
  return new OsmXmlParser(xml).parse();
}

/**
 * One parse. A class rather than closures: under tsx every named closure made per element pays
 * for esbuild's name-keeping helper, which made a 35 MB file take 1.7× as long.
 */
class OsmXmlParser {
  readonly #xml: string;
  readonly #builder = new ExtractBuilder();
  readonly #stack: OpenElement[] = [];
  #sawRoot = false;

  constructor(xml: string) {
    this.#xml = xml;
  }

  parse(): OsmExtract {
    const xml = this.#xml;
    const stack = this.#stack;
    let i = xml.charCodeAt(0) === 0xfeff ? 1 : 0;
    while (i < xml.length) {
      const lt = xml.indexOf('<', i);
      const textEnd = lt < 0 ? xml.length : lt;
      if (stack.length === 0 && NOT_SPACE.test(xml.slice(i, textEnd))) this.#fail('text outside the root element', i);
      if (lt < 0) break;

      if (xml.startsWith('<?', lt)) {
        i = this.#skipPast('?>', lt);
      } else if (xml.startsWith('<!--', lt)) {
        i = this.#skipPast('-->', lt);
      } else if (xml.startsWith('<![CDATA[', lt)) {
        if (stack.length === 0) this.#fail('CDATA outside the root element', lt);
        i = this.#skipPast(']]>', lt);
      } else if (xml.startsWith('<!', lt)) {
        this.#fail('DOCTYPE and other declarations are not accepted', lt);
      } else if (xml.startsWith('</', lt)) {
        END_TAG.lastIndex = lt;
        const match = END_TAG.exec(xml);
        if (!match) this.#fail('malformed end tag', lt);
        const name = match[1]!;
        const open = stack.pop();
        if (!open) this.#fail(`</${name}> closes nothing`, lt);
        if (open.name !== name) this.#fail(`</${name}> closes <${open.name}>`, lt);
        this.#close(open);
        i = END_TAG.lastIndex;
      } else {
        i = this.#startTag(lt);
      }
    }
    if (stack.length > 0) this.#fail(`<${stack[stack.length - 1]!.name}> is never closed`, xml.length);
    if (!this.#sawRoot) this.#fail('no <osm> element', xml.length);
    return this.#builder.build();
  }

  /** Reads the start tag at `lt`, opens (and for `/>` closes) its element; returns where parsing goes on. */
  #startTag(lt: number): number {
    const xml = this.#xml;
    NAME.lastIndex = lt + 1;
    const nameMatch = NAME.exec(xml);
    if (!nameMatch) this.#fail('malformed start tag', lt);
    const name = nameMatch[0];
    let at = NAME.lastIndex;
    const attributes: Attributes = new Map();
    for (;;) {
      ATTRIBUTE.lastIndex = at;
      const attribute = ATTRIBUTE.exec(xml);
      if (!attribute) break;
      const key = attribute[1]!;
      if (attributes.has(key)) this.#fail(`attribute ${key} repeated on <${name}>`, at);
      try {
        attributes.set(key, attributeValue(attribute[2] ?? attribute[3]!));
      } catch (error) {
        if (error instanceof BadReference) this.#fail(error.message, at);
        throw error;
      }
      at = ATTRIBUTE.lastIndex;
    }
    TAG_END.lastIndex = at;
    const end = TAG_END.exec(xml);
    if (!end) this.#fail(`malformed <${name}> tag`, at);

    if (this.#stack.length === 0) {
      if (this.#sawRoot) this.#fail('a second root element', lt);
      if (name !== 'osm') this.#fail(`the root element is <${name}>, not <osm>`, lt);
      this.#sawRoot = true;
    }
    const element = this.#open(name, attributes, lt);
    if (end[1] === '/') this.#close(element);
    else this.#stack.push(element);
    return TAG_END.lastIndex;
  }

  #open(name: string, attributes: Attributes, at: number): OpenElement {
    const parent = this.#stack[this.#stack.length - 1];
    const builder = this.#builder;
    // JOSM files keep deleted objects with action="delete"; the API marks them visible="false".
    const deleted = attributes.get('action') === 'delete' || attributes.get('visible') === 'false';

    switch (name) {
      case 'bounds': {
        if (parent?.name === 'osm') {
          builder.bbox = [this.#number(attributes, name, 'minlon', at), this.#number(attributes, name, 'minlat', at), this.#number(attributes, name, 'maxlon', at), this.#number(attributes, name, 'maxlat', at)];
        }
        return { name };
      }
      case 'node': {
        if (parent?.name !== 'osm') this.#fail('<node> outside <osm>', at);
        const id = this.#number(attributes, name, 'id', at);
        checkId(id, 'a node');
        if (deleted) return { name, node: { id, lon: 0, lat: 0, tags: null, skip: true } };
        const lon = this.#number(attributes, name, 'lon', at);
        const lat = this.#number(attributes, name, 'lat', at);
        if (!validLonLat(lon, lat)) checkLonLat(lon, lat, `node ${id}`);
        return { name, node: { id, lon, lat, tags: null, skip: false } };
      }
      case 'way': {
        if (parent?.name !== 'osm') this.#fail('<way> outside <osm>', at);
        const id = this.#number(attributes, name, 'id', at);
        checkId(id, 'a way');
        return { name, way: { id, refs: [], tags: {}, skip: deleted } };
      }
      case 'nd': {
        const way = parent?.way;
        if (!way) this.#fail('<nd> outside <way>', at);
        const ref = this.#number(attributes, name, 'ref', at);
        if (!Number.isSafeInteger(ref)) checkId(ref, `a node of way ${way.id}`);
        way.refs.push(ref);
        // Overpass `out geom` puts each node's position on its <nd>; a real <node> element wins.
        if (attributes.has('lat') && attributes.has('lon') && !builder.hasNode(ref)) {
          const lon = this.#number(attributes, name, 'lon', at);
          const lat = this.#number(attributes, name, 'lat', at);
          checkLonLat(lon, lat, `node ${ref}`);
          builder.addNode(ref, lon, lat);
        }
        return { name };
      }
      case 'tag': {
        const key = this.#required(attributes, name, 'k', at);
        const value = this.#required(attributes, name, 'v', at);
        if (parent?.way) parent.way.tags[key] = value;
        else if (parent?.node) (parent.node.tags ??= {})[key] = value;
        else if (parent?.name !== 'relation' && parent?.name !== 'changeset') this.#fail(`<tag> inside <${parent?.name ?? 'nothing'}>`, at);
        return { name };
      }
      default:
        // relation, member, note, meta, remark, bound…: nothing the planner needs.
        return { name };
    }
  }

  #close(element: OpenElement): void {
    const { node, way } = element;
    if (node && !node.skip) this.#builder.addNode(node.id, node.lon, node.lat, node.tags);
    if (way && !way.skip) this.#builder.addWay(way.id, way.refs, way.tags);
  }

  #required(attributes: Attributes, name: string, key: string, at: number): string {
    return attributes.get(key) ?? this.#fail(`<${name}> has no ${key} attribute`, at);
  }

  #number(attributes: Attributes, name: string, key: string, at: number): number {
    const text = this.#required(attributes, name, key, at);
    const value = text.trim() === '' ? Number.NaN : Number(text);
    return Number.isFinite(value) ? value : this.#fail(`<${name}> ${key}="${text}" is not a number`, at);
  }

  #skipPast(terminator: string, from: number): number {
    const end = this.#xml.indexOf(terminator, from);
    return end < 0 ? this.#fail(`unterminated ${this.#xml.slice(from, from + 4)}`, from) : end + terminator.length;
  }

  #fail(message: string, at: number): never {
    throw new OsmFormatError(`not valid OSM XML: ${message} (line ${lineOf(this.#xml, at)})`);
  }
}

const PREDEFINED: Record<string, string> = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };

/** A reference (`&…;`) that XML does not allow; the parser adds the line. */
class BadReference extends Error {}

/** An attribute's value as XML 1.0 defines it: literal whitespace becomes spaces, references are replaced. */
function attributeValue(raw: string): string {
  const spaced = /[\t\r\n]/.test(raw) ? raw.replace(/\r\n?/g, '\n').replace(/[\t\n]/g, ' ') : raw;
  return spaced.includes('&') ? spaced.replace(/&([^;&]{0,10})(;?)/g, replaceReference) : spaced;
}

function replaceReference(_: string, body: string, semicolon: string): string {
  if (!semicolon) throw new BadReference(`a bare & before "${body}"`);
  const predefined = PREDEFINED[body];
  if (predefined !== undefined) return predefined;
  const numeric = /^#(?:x([0-9A-Fa-f]{1,6})|([0-9]{1,7}))$/.exec(body);
  if (!numeric) throw new BadReference(`unknown entity &${body};`);
  const code = numeric[1] !== undefined ? Number.parseInt(numeric[1], 16) : Number(numeric[2]);
  const allowed = code === 0x9 || code === 0xa || code === 0xd || (code >= 0x20 && code <= 0xd7ff) || (code >= 0xe000 && code <= 0xfffd) || (code >= 0x10000 && code <= 0x10ffff);
  if (!allowed) throw new BadReference(`&${body}; is not an XML character`);
  return String.fromCodePoint(code);
}

function lineOf(text: string, at: number): number {
  let line = 1;
  for (let i = text.indexOf('\n'); i >= 0 && i < at; i = text.indexOf('\n', i + 1)) line++;
  return line;
}
