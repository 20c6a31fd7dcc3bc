// The Overview: the wedding at a glance for the couple and the planner, drawn from one read
// (GET /api/weddings/{id}/overview, cut by the server to what the person's role may read: a
// section it may not read is absent, and so is its chart). A chunk of its own, loaded when
// the Overview is first shown.
//
// Every chart is an SVG with an accessible name (role="img", aria-label and <title>) and the
// same figures as a table behind "Show as a table"; the charts print (styles.css, @media
// print). The figures follow the documents live: the activity feed's events of the guests,
// the budget, the tasks and the day ask for a new read, at most one every THROTTLE_MS, the
// last one always made. The budget by category is the budget view's chart (budgetchart.js,
// a lazy chunk of its own, loaded here when there is a budget to show).

import { html, nothing, svg } from 'lit-html'
import { call } from './api.js'

export const THROTTLE_MS = 1500
const FOLLOWED = /^(guest|rsvp|budget|task|timeline|seating|day|document)\./

const WORDS = { accepted: 'Accepted', pending: 'Not answered', declined: 'Declined' }
const SIDES = { partner_a: 'Partner A', partner_b: 'Partner B', both: 'Both', null: 'No side' }

/** Whether one of `events` may change a figure of the overview. */
export function concerns (events) {
  return events.some((e) => e && typeof e.type === 'string' && FOLLOWED.test(e.type))
}

/** The overview's figures, read from the server and read again as the documents change. */
export class OverviewFigures {
  constructor ({ wedding, token, onChange, throttle = THROTTLE_MS }) {
    this.base = `/api/weddings/${encodeURIComponent(wedding)}/overview`
    this.token = token
    this.onChange = onChange
    this.throttle = throttle
    this.figures = null
    this.error = null
    this.reading = null
    this.again = false
    this.timer = null
    this.last = 0
  }

  /** Read now, unless a read is under way (then once more after it). */
  async read () {
    if (this.reading) { this.again = true; return this.reading }
    this.last = Date.now()
    this.reading = call(this.token, this.base, 'GET').then(({ status, body }) => {
      if (status === 200 && body) { this.figures = body; this.error = null } else {
        this.error = status === 0 ? 'The server cannot be reached: the figures shown are the last read.' : `The overview could not be read (${(body && body.detail) || `HTTP ${status}`}).`
      }
    }).finally(() => {
      this.reading = null
      this.onChange()
      if (this.again) { this.again = false; this.soon() }
    })
    return this.reading
  }

  /** Read again soon: at once if the last read is older than the throttle, else when it is. */
  soon () {
    if (this.timer) return
    const wait = Math.max(0, this.last + this.throttle - Date.now())
    this.timer = setTimeout(() => { this.timer = null; this.read() }, wait)
  }

  onEvents (events) {
    if (concerns(events)) this.soon()
  }

  /** The Overview was shown: a first read, or a fresh one when the last is a minute old. */
  shown () {
    if (!this.figures && !this.reading && !this.error) this.read()
    else if (Date.now() - this.last > 60000) this.soon()
  }
}

// -- charts ---------------------------------------------------------------------------------

const WIDTH = 560
const LABEL = 150
const BAR = 16
const ROW = 26

const clip = (text, n = 22) => (text.length > n ? `${text.slice(0, n - 1)}…` : text)

/** A figure: the SVG (role="img", named by `label` and its <title>) and its table. */
function figure (name, label, caption, drawing, height, table) {
  return html`<figure class="card overview-chart" data-chart=${name}>
    <figcaption>${caption}</figcaption>
    <svg viewBox=${`0 0 ${WIDTH} ${height}`} width="100%" role="img" aria-label=${label}>
      <title>${label}</title>${drawing}</svg>
    <details class="chart-figures">
      <summary>Show as a table</summary>
      ${table}
    </details>
  </figure>`
}

function legend (series) {
  return series.map((s, i) => svg`<rect class=${s.cls} x=${LABEL + i * 120} y="2" width="12" height="12"></rect>
    <text x=${LABEL + i * 120 + 16} y="13" class="chart-legend">${s.label}</text>`)
}

function figuresTable (caption, head, rows, series, format) {
  return html`<table class="chart-table">
    <caption>${caption}</caption>
    <thead><tr><th scope="col">${head}</th>${series.map((s) => html`<th scope="col">${s.label}</th>`)}</tr></thead>
    <tbody>${rows.map((r) => html`<tr><th scope="row">${r.name}</th>${series.map((s) => html`<td>${format(r.values[s.key] || 0)}</td>`)}</tr>`)}</tbody>
  </table>`
}

/** Horizontal bars, one row per entry of `rows` ({name, values}): the series stacked in one
 *  bar (`stacked`), or side by side as thinner bars. */
export function barChart ({ name, caption, label, rows, series, stacked = true, format = String, head = '' }) {
  const totals = rows.map((r) => (stacked ? series.reduce((n, s) => n + (r.values[s.key] || 0), 0) : Math.max(0, ...series.map((s) => r.values[s.key] || 0))))
  const largest = Math.max(1, ...totals)
  const span = WIDTH - LABEL - 60
  const scale = (n) => Math.max(0, Math.round((span * n) / largest))
  const thick = stacked ? BAR : Math.max(6, Math.floor(BAR * 2 / series.length))
  const row = stacked ? ROW : thick * series.length + 10
  const height = 24 + Math.max(1, rows.length) * row
  const bars = rows.map((r, i) => {
    const y = 24 + i * row
    let x = LABEL
    const parts = series.map((s, j) => {
      const w = scale(r.values[s.key] || 0)
      const part = stacked
        ? svg`<rect class=${s.cls} x=${x} y=${y} width=${w} height=${BAR}></rect>`
        : svg`<rect class=${s.cls} x=${LABEL} y=${y + j * thick} width=${w} height=${thick - 1}></rect>`
      x += stacked ? w : 0
      return part
    })
    return svg`<g data-row=${r.name}><text x="0" y=${y + 12} class="chart-label">${clip(r.name)}</text>${parts}
      <text x=${LABEL + scale(totals[i]) + 4} y=${y + 12} class="chart-value">${stacked ? format(totals[i]) : ''}</text></g>`
  })
  const empty = rows.length ? nothing : svg`<text x=${LABEL} y="40" class="chart-label">Nothing yet</text>`
  return figure(name, label, caption, svg`${legend(series)}${bars}${empty}`, height,
    figuresTable(caption, head, rows, series, format))
}

/** RSVP progress: how many guests had answered by each day (a line over the days), and the
 *  answers given each day (bars). */
export function progressChart (days, guests) {
  const label = days.length
    ? `RSVP progress: ${days[days.length - 1].answered} of ${guests} guests answered by ${days[days.length - 1].day}, over ${days.length} day${days.length === 1 ? '' : 's'} with answers`
    : 'RSVP progress: no answers yet'
  const height = 180
  const top = 24
  const bottom = height - 24
  const left = 40
  const step = days.length > 1 ? (WIDTH - left - 20) / (days.length - 1) : 0
  const most = Math.max(1, guests, ...days.map((d) => d.answered))
  const perDay = Math.max(1, ...days.map((d) => d.accepted + d.declined + d.pending))
  const y = (n, of) => bottom - ((bottom - top) * n) / of
  const xOf = (i) => left + (days.length > 1 ? i * step : (WIDTH - left) / 2)
  const points = days.map((d, i) => `${xOf(i)},${y(d.answered, most)}`).join(' ')
  const drawing = svg`
    <rect class="accepted" x=${LABEL} y="2" width="12" height="12"></rect><text x=${LABEL + 16} y="13" class="chart-legend">Answers that day</text>
    <line class="axis" x1=${left} y1=${bottom} x2=${WIDTH - 10} y2=${bottom}></line>
    <text x="0" y=${top + 4} class="chart-label">${most}</text><text x="0" y=${bottom} class="chart-label">0</text>
    ${days.map((d, i) => svg`<rect class="answers-day" x=${xOf(i) - 5} y=${y(d.accepted + d.declined + d.pending, perDay * 2)} width="10"
      height=${bottom - y(d.accepted + d.declined + d.pending, perDay * 2)}></rect>`)}
    ${days.length ? svg`<polyline class="progress" points=${points} fill="none"></polyline>` : nothing}
    ${days.map((d, i) => svg`<circle class="progress-point" cx=${xOf(i)} cy=${y(d.answered, most)} r="3.5"></circle>`)}
    ${days.length ? svg`<text x=${left} y=${height - 6} class="chart-label">${days[0].day}</text>
      <text x=${WIDTH - 10} y=${height - 6} text-anchor="end" class="chart-label">${days[days.length - 1].day}</text>` : svg`<text x=${left + 10} y="80" class="chart-label">No answers yet</text>`}`
  return figure('rsvp-progress', label, 'RSVP progress: answers by day', drawing, height, html`<table class="chart-table">
    <caption>Answers by day</caption>
    <thead><tr><th scope="col">Day</th><th scope="col">Accepted</th><th scope="col">Declined</th><th scope="col">Not sure yet</th><th scope="col">Answered by then</th></tr></thead>
    <tbody>${days.map((d) => html`<tr><th scope="row">${d.day}</th><td>${d.accepted}</td><td>${d.declined}</td><td>${d.pending}</td><td>${d.answered}</td></tr>`)}</tbody>
  </table>`)
}

const RSVP_SERIES = [
  { key: 'accepted', label: 'Accepted', cls: 'accepted' },
  { key: 'pending', label: 'Not answered', cls: 'pending' },
  { key: 'declined', label: 'Declined', cls: 'declined' }
]

const count = (n, one, many) => `${n} ${n === 1 ? one : many}`

function guestCharts (g) {
  const sides = g.by_side.map((s) => ({ name: SIDES[s.side] || s.side || SIDES.null, values: s }))
  const households = g.by_household.slice(0, 40).map((h) => ({ name: h.name, values: h }))
  const meals = [...Object.entries(g.meals).map(([meal, n]) => ({ name: meal, values: { people: n } })),
    ...(g.no_meal ? [{ name: 'No meal chosen', values: { people: g.no_meal } }] : [])]
  const summary = (rows) => rows.map((r) => `${r.name}: ${r.values.accepted || 0} accepted, ${r.values.pending || 0} not answered, ${r.values.declined || 0} declined`).join('; ')
  return html`
    <section class="overview-part" aria-labelledby="overview-guests"><h3 id="overview-guests">Guests</h3>
      <p class="overview-figures">${count(g.people, 'person', 'people')} invited: <strong>${g.rsvp.accepted}</strong> accepted,
        <strong>${g.rsvp.pending}</strong> not answered, <strong>${g.rsvp.declined}</strong> declined.</p>
      ${g.answers_by_day ? progressChart(g.answers_by_day, g.guests) : nothing}
      ${barChart({ name: 'rsvp-sides', caption: 'Answers by side', head: 'Side', rows: sides, series: RSVP_SERIES,
        label: `Answers by side: ${summary(sides) || 'no guests yet'}` })}
      ${barChart({ name: 'rsvp-households', caption: g.by_household.length > 40 ? 'Answers by household (the first 40)' : 'Answers by household',
        head: 'Household', rows: households, series: RSVP_SERIES,
        label: `Answers by household: ${summary(households) || 'no households yet'}${g.without_household ? `; ${count(g.without_household, 'person', 'people')} in no household` : ''}` })}
      ${barChart({ name: 'meals', caption: 'Meals of who may come', head: 'Meal', rows: meals,
        series: [{ key: 'people', label: 'People', cls: 'meal' }],
        label: `Meals: ${meals.map((m) => `${m.name} ${m.values.people}`).join(', ') || 'none chosen yet'}` })}
    </section>`
}

let budgetChartModule = null
let budgetChartLoading = null

function categoryChart (ctx, categories, label, money) {
  if (budgetChartModule) return budgetChartModule.budgetChart(categories, money, label)
  if (!budgetChartLoading) {
    budgetChartLoading = import('./budgetchart.js')
      .then((m) => { budgetChartModule = m; ctx.render() })
      .catch(() => { budgetChartLoading = null })
  }
  return html`<p class="muted">Loading the chart…</p>`
}

function budgetCharts (ctx, b, money) {
  const months = b.by_month.map((m) => ({ name: m.month === 'undated' ? 'No date' : m.month, values: m }))
  const left = b.total !== null && b.total !== undefined ? b.total - b.paid - b.scheduled : null
  const categories = b.by_category.map((c) => ({ ...c, id: c.id || '-', name: c.name || 'No such category' }))
  return html`
    <section class="overview-part" aria-labelledby="overview-budget"><h3 id="overview-budget">Budget</h3>
      <p class="overview-figures">Planned <strong>${money(b.planned)}</strong>, paid <strong>${money(b.paid)}</strong>,
        scheduled <strong>${money(b.scheduled)}</strong>${left !== null ? html`, ${left < 0 ? 'over the total by' : 'left of the total'} <strong>${money(Math.abs(left))}</strong>` : nothing}.</p>
      ${categoryChart(ctx, categories, `Budget by category: ${categories.map((c) => `${c.name} planned ${money(c.planned)}, paid ${money(c.paid)}, scheduled ${money(c.scheduled)}`).join('; ') || 'no categories yet'}`, money)}
      ${barChart({ name: 'budget-months', caption: 'Paid and scheduled by month', head: 'Month', rows: months, format: money,
        series: [{ key: 'paid', label: 'Paid', cls: 'paid' }, { key: 'scheduled', label: 'Scheduled', cls: 'scheduled' }],
        label: `Budget by month: ${months.map((m) => `${m.name} paid ${money(m.values.paid)}, scheduled ${money(m.values.scheduled)}`).join('; ') || 'no payments yet'}` })}
    </section>`
}

function taskCharts (t) {
  const months = t.by_month.map((m) => ({ name: m.month === 'undated' ? 'No day' : m.month, values: m }))
  return html`
    <section class="overview-part" aria-labelledby="overview-tasks"><h3 id="overview-tasks">Tasks</h3>
      <p class="overview-figures"><strong>${t.done}</strong> of ${count(t.total, 'task', 'tasks')} done;
        <strong class=${t.overdue ? 'overdue' : ''}>${t.overdue}</strong> overdue, <strong>${t.due_today}</strong> due today,
        <strong>${t.due_soon}</strong> due within a week.</p>
      ${barChart({ name: 'tasks-months', caption: 'Tasks done against due, by month', head: 'Month', rows: months, stacked: false,
        series: [{ key: 'due', label: 'Due', cls: 'due' }, { key: 'done', label: 'Done', cls: 'done' }],
        label: `Tasks by month: ${months.map((m) => `${m.name} ${m.values.done} of ${m.values.due} done`).join('; ') || 'no tasks yet'}` })}
    </section>`
}

function vendorList (v, local) {
  if (!v.day) return nothing
  const ready = v.vendors.filter((x) => x.ready).length
  const yes = (ok, text) => html`<span class=${ok ? 'ready' : 'missing'}>${ok ? '✓' : '✗'} ${text}</span>`
  return html`
    <section class="overview-part" aria-labelledby="overview-vendors"><h3 id="overview-vendors">The day's vendors</h3>
      <p class="overview-figures">${v.vendors.length ? html`<strong>${ready}</strong> of ${count(v.vendors.length, 'vendor', 'vendors')} ready for ${local.day(v.day)}.` : `No vendor on the timeline for ${local.day(v.day)} yet.`}</p>
      ${v.vendors.length ? html`<table class="per-table overview-vendors">
        <caption class="sr-only">The day's vendors, and what each still needs</caption>
        <thead><tr><th scope="col">Vendor</th><th scope="col">Arrival</th><th scope="col">Contact</th><th scope="col">Calendar linked</th></tr></thead>
        <tbody>${v.vendors.map((x) => html`<tr data-vendor=${x.id} class=${x.ready ? 'ready' : ''}>
          <th scope="row">${x.name}${x.category ? html` <span class="muted">(${x.category})</span>` : nothing}${x.ready ? html` <span class="pill accepted">ready</span>` : nothing}</th>
          <td>${x.arrival ? local.time(x.arrival) : yes(false, 'no call time')}</td>
          <td>${x.contact ? html`${x.contact.name || ''} ${x.contact.phone ? html`<a href=${`tel:${x.contact.phone}`}>${x.contact.phone}</a>` : nothing} ${x.contact.email ? html`<a href=${`mailto:${x.contact.email}`}>${x.contact.email}</a>` : nothing}` : yes(x.has_contact, x.has_contact ? 'given' : 'none')}</td>
          <td>${yes(x.run_sheet || x.members > 0, x.run_sheet ? 'run sheet link' : x.members > 0 ? `${count(x.members, 'account', 'accounts')} in the app` : 'not yet')}</td>
        </tr>`)}</tbody></table>` : nothing}
    </section>`
}

/** The Overview section. `ctx.overview` is made here on first show (main.js forwards the
 *  feed's events to it). */
export function overviewView (ctx) {
  if (!ctx.overview) ctx.overview = new OverviewFigures({ wedding: ctx.wedding, token: () => ctx.keeper.token, onChange: () => ctx.render() })
  const o = ctx.overview
  o.shown()
  const f = o.figures
  const money = (n) => ctx.local.money(n)
  return html`<section class="overview" aria-labelledby="overview-title">
    <header class="section-head"><h2 id="overview-title">Overview</h2>
      <button type="button" class="link print-overview" @click=${() => print()}>Print</button></header>
    ${o.error ? html`<p class="banner" role="status">${o.error}</p>` : nothing}
    ${f ? html`
      ${f.guests ? guestCharts(f.guests) : nothing}
      ${f.budget ? budgetCharts(ctx, f.budget, money) : nothing}
      ${f.tasks ? taskCharts(f.tasks) : nothing}
      ${f.vendors ? vendorList(f.vendors, ctx.local) : nothing}
      <p class="muted overview-read">Figures as of ${ctx.local.dateTime(new Date(o.last).toISOString())}; they follow changes as they are made.</p>`
      : o.error ? nothing : html`<p class="muted">Reading the figures…</p>`}
  </section>`
}
