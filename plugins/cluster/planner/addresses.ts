/**
 * Address identity (SPEC Part 2 §2.5 B): two homes whose normalised street and city are equal are
 * the same home, however they were typed or geocoded.
 *
 * @module
 */

const WORDS: Record<string, string> = {
  STREET: 'ST',
  AVENUE: 'AVE',
  LANE: 'LN',
  DRIVE: 'DR',
  ROAD: 'RD',
  COURT: 'CT',
  CIRCLE: 'CIR',
  PLACE: 'PL',
  BOULEVARD: 'BLVD',
  NORTH: 'N',
  SOUTH: 'S',
  EAST: 'E',
  WEST: 'W',
  NORTHEAST: 'NE',
  NORTHWEST: 'NW',
  SOUTHEAST: 'SE',
  SOUTHWEST: 'SW',
  SUITE: 'STE',
  APARTMENT: 'APT',
};

const STATES: Record<string, string> = {
  ALABAMA: 'AL', ALASKA: 'AK', ARIZONA: 'AZ', ARKANSAS: 'AR', CALIFORNIA: 'CA', COLORADO: 'CO', CONNECTICUT: 'CT', DELAWARE: 'DE',
  FLORIDA: 'FL', GEORGIA: 'GA', HAWAII: 'HI', IDAHO: 'ID', ILLINOIS: 'IL', INDIANA: 'IN', IOWA: 'IA', KANSAS: 'KS', KENTUCKY: 'KY',
  LOUISIANA: 'LA', MAINE: 'ME', MARYLAND: 'MD', MASSACHUSETTS: 'MA', MICHIGAN: 'MI', MINNESOTA: 'MN', MISSISSIPPI: 'MS',
  MISSOURI: 'MO', MONTANA: 'MT', NEBRASKA: 'NE', NEVADA: 'NV', 'NEW HAMPSHIRE': 'NH', 'NEW JERSEY': 'NJ', 'NEW MEXICO': 'NM',
  'NEW YORK': 'NY', 'NORTH CAROLINA': 'NC', 'NORTH DAKOTA': 'ND', OHIO: 'OH', OKLAHOMA: 'OK', OREGON: 'OR', PENNSYLVANIA: 'PA',
  'RHODE ISLAND': 'RI', 'SOUTH CAROLINA': 'SC', 'SOUTH DAKOTA': 'SD', TENNESSEE: 'TN', TEXAS: 'TX', UTAH: 'UT', VERMONT: 'VT',
  VIRGINIA: 'VA', WASHINGTON: 'WA', 'WEST VIRGINIA': 'WV', WISCONSIN: 'WI', WYOMING: 'WY', 'DISTRICT OF COLUMBIA': 'DC',
};

/** A street line in canonical form: `931 Stone Slope Lane S.W.` → `931 STONE SLOPE LN SW`. */
export function normaliseStreet(street: string): string {
  const words = clean(street)
    .split(' ')
    .filter(Boolean)
    .map((word) => WORDS[word] ?? word.replace(/^(\d+)(ST|ND|RD|TH)$/, '$1'));
  return words.join(' ');
}

/** A state name or code as its USPS code (`Minnesota` → `MN`). */
export function normaliseState(state: string): string {
  const name = clean(state);
  return STATES[name] ?? name;
}

/** The identity of an address: normalised street and city (ZIP codes play no part). */
export function addressKey(street: string, city: string): string {
  return `${normaliseStreet(street)}|${clean(city)}`;
}

/** Upper case, punctuation gone (except `/`, as in `116 1/2`), dotted abbreviations joined, spaces single. */
function clean(text: string): string {
  return text
    .toUpperCase()
    .normalize('NFKD')
    .replace(/[\u0300-\u036f]/g, '')
    .replace(/\b([NSEW])\.\s?([NSEW])\./g, '$1$2')
    .replace(/[^A-Z0-9/ ]+/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}
