/** MQTT topic filters: matching with `+` and `#`, and shared-subscription prefixes. */

/** The filter without a `$share/<group>/` prefix: what the topic itself must match. */
export function unshared(filter: string): string {
  return filter.startsWith('$share/') ? filter.split('/').slice(2).join('/') : filter;
}

/** Whether a topic matches a filter (`+` one level, `#` the rest). */
export function topicMatches(filter: string, topic: string): boolean {
  const f = unshared(filter).split('/');
  const t = topic.split('/');
  for (let i = 0; i < f.length; i++) {
    if (f[i] === '#') return true;
    if (i >= t.length) return false;
    if (f[i] !== '+' && f[i] !== t[i]) return false;
  }
  return f.length === t.length;
}
