/**
 * Mammotion product keys (facts from the vendor's published device list, as collected in
 * PyMammotion's device-type table; data, not code). Used to recognise a Luba 1 exactly and to
 * tell devices still on the Aliyun cloud.
 *
 * Source: PyMammotion `pymammotion/utility/device_type.py` at commit
 * 3dd7a961fa3a3e37b7721b46fc6626add902b9e3. Any product key not in `ALIYUN_PRODUCT_KEYS` is
 * taken to be on the Mammotion-direct cloud (SPEC §1).
 *
 * @module
 */

/** Product keys of the original Luba (Luba 1). */
export const LUBA1_PRODUCT_KEYS: readonly string[] = [
  'a1BmXWlsdbA',
  'a1JFpmAV5Ur',
  'a1K4Ki2L5rK',
  'a1UBFdq6nNz',
  'a1ZU6bdGjaM',
  'a1ae1QnXZGf',
  'a1jOhAYOIG8',
  'a1kweSOPylG',
  'a1nf9kRBWoH',
  'a1pvCnb3PPu',
  'a1x0zHD3Xop',
];

/** Product keys of devices served by the Aliyun IoT cloud (pre-2025 firmware). */
export const ALIYUN_PRODUCT_KEYS: readonly string[] = [
  'a14iRDqMepW',
  'a16cz0iXgUJ',
  'a1BBOJnnjb9',
  'a1BmXWlsdbA',
  'a1BqmEWMRbX',
  'a1Ce85210Be',
  'a1IQV0BrnXb',
  'a1JFpmAV5Ur',
  'a1K4Ki2L5rK',
  'a1L5ZfJIxGl',
  'a1LLmy1zc0j',
  'a1Nc68bGZzX',
  'a1NfZqdSREf',
  'a1OWGO8WXbh',
  'a1T6VTFTc0C',
  'a1UBFdq6nNz',
  'a1ZU6bdGjaM',
  'a1ZuQVL7UiN',
  'a1ae1QnXZGf',
  'a1biqVGvxrE',
  'a1dCWYFLROK',
  'a1iMygIwxFC',
  'a1jDMfG2Fgj',
  'a1jFe8HzcDb',
  'a1jOhAYOIG8',
  'a1kT0TlYEza',
  'a1kweSOPylG',
  'a1lNESu9VST',
  'a1mGLcddn4u',
  'a1mb8v6tnAa',
  'a1nf9kRBWoH',
  'a1pHsTqyoPR',
  'a1pb9toor70',
  'a1pvCnb3PPu',
  'a1qXkZ5P39W',
  'a1s6znKxGvI',
  'a1vtZq9LUFS',
  'a1wIIUUdAMX',
  'a1x0zHD3Xop',
  'a1zAEzmvWDa',
  'uY54W5rM8YH',
];

/**
 * Product keys per family, for reference and model detection by key. Family names are the
 * vendor table's list names (without the "ProductKey" suffix).
 */
export const PRODUCT_KEYS_BY_FAMILY: Readonly<Record<string, readonly string[]>> = {
  /** Luba 1 (original Luba). */
  Luba: [
    'a1BmXWlsdbA',
    'a1JFpmAV5Ur',
    'a1K4Ki2L5rK',
    'a1UBFdq6nNz',
    'a1ZU6bdGjaM',
    'a1ae1QnXZGf',
    'a1jOhAYOIG8',
    'a1kweSOPylG',
    'a1nf9kRBWoH',
    'a1pvCnb3PPu',
    'a1x0zHD3Xop',
  ],
  /** Luba 2 (Luba-VS). */
  LubaV: ['a1LLmy1zc0j', 'a1iMygIwxFC'],
  /** Luba 2 Pro (Luba-VP). */
  LubaVPro: ['a1mb8v6tnAa', 'a1pHsTqyoPR'],
  /** Luba 2 Mini (Luba-MN, HM430). */
  Luba2Mini: ['a1L5ZfJIxGl', 'a1dCWYFLROK'],
  /** Yuka (original). */
  Yuka: ['a1IQV0BrnXb', 'a1kT0TlYEza'],
  /** Yuka Plus / Yuka VP (Yuka-VP, MN241). */
  YukaPlus: ['a1lNESu9VST', 'a1zAEzmvWDa'],
  /** Yuka Mini (Yuka-MN). */
  YukaMini: ['a1BqmEWMRbX', 'a1biqVGvxrE'],
  /** RTK reference station. */
  RTK: ['a1Nc68bGZzX', 'a1mGLcddn4u', 'a1qXkZ5P39W', 'a1wIIUUdAMX'],
  /** Yuka MiniV (Yuka-MV, MN231); a1jFe8HzcDb and a16cz0iXgUJ are Aliyun, the other two are not. */
  YukaMV: ['USpE46bNTC7', 'a16cz0iXgUJ', 'a1jFe8HzcDb', 'pdA6uJrBfjz'],
  /** Luba-LD (HM431). */
  LubaLD: ['a1jDMfG2Fgj', 'a1vtZq9LUFS'],
  /** Luba-VA (HM442). */
  LubaVA: ['a1BBOJnnjb9', 'a1Ce85210Be', 'uY54W5rM8YH'],
  /** Yuka-ML (MN232). */
  YukaML: ['a1OWGO8WXbh', 'a1s6znKxGvI'],
  /** Luba-MD (HM433). */
  LubaMD: ['a14iRDqMepW', 'a1T6VTFTc0C'],
  /** Luba-MB (HM434). */
  LubaMB: ['a1pb9toor70'],
  /** Luba-ME (HM620). */
  LubaME: ['HK8snDC8Kxh'],
  /** RTK NB station. */
  RTKNB: ['a1NfZqdSREf', 'a1ZuQVL7UiN'],
  /** Luba-LA (HM432). */
  LubaLA: ['CDYuKXTYrSP'],
  /** Ezy-VT (MN100). */
  YukaMN100: ['NnbeYtaEUGE'],
  /** CM900 (Kumar-MK, KM01). */
  Cm900: ['6DbgVh2Qs5m', 'zkRuTK9KsXG'],
};
