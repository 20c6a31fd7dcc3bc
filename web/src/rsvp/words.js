// The RSVP page's dates, written for people (never `2027-06-12`): in the guest's language,
// a calendar day as the same day everywhere, a moment in the wedding's time zone.

/** A day (`YYYY-MM-DD`) or a moment, written for people in the guest's language: "Saturday,
 *  12 June 2027"; a moment in the wedding's time zone, with its time. As given when it is
 *  neither (never a crash over a mistyped date). */
export function spoken (value, zone) {
  const text = String(value || '')
  try {
    if (/^\d{4}-\d\d-\d\d$/.test(text)) {
      // A calendar day is the same day everywhere: its noon in UTC, written in UTC.
      const noon = new Date(`${text}T12:00:00Z`)
      return new Intl.DateTimeFormat(undefined, { timeZone: 'UTC', weekday: 'long', day: 'numeric', month: 'long', year: 'numeric' }).format(noon)
    }
    const at = Date.parse(text)
    if (Number.isNaN(at)) return text
    const options = { weekday: 'long', day: 'numeric', month: 'long', year: 'numeric', hour: 'numeric', minute: '2-digit' }
    try {
      return new Intl.DateTimeFormat(undefined, { ...options, timeZone: zone || undefined }).format(new Date(at))
    } catch {
      return new Intl.DateTimeFormat(undefined, options).format(new Date(at)) // an unknown zone
    }
  } catch {
    return text
  }
}
