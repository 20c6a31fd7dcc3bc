// The budget's chart: planned, paid and scheduled per category, drawn in SVG, with the same
// figures as a table for screen readers and anyone who prefers numbers. A chunk of its own,
// imported by the budget view when it is first shown (keeping the core app small).
import { html, svg } from 'lit-html'

const BAR = 14 // height of one bar
const GAP = 6 // between a category's two bars
const ROW = BAR * 2 + GAP + 18 // one category: the plan bar, the spent bar, and space
const LABEL = 140 // the names' column
const WIDTH = 560

/** Per category: `{id, name, planned, paid, scheduled}`, in the order given. */
export function chartRows (budget) {
  const paid = new Map()
  const scheduled = new Map()
  for (const p of budget.payments) {
    const into = p.status === 'scheduled' ? scheduled : paid
    into.set(p.category_id, (into.get(p.category_id) || 0) + p.amount)
  }
  return budget.categories.map((c) => ({
    id: c.id,
    name: c.name,
    planned: c.planned,
    paid: paid.get(c.id) || 0,
    scheduled: scheduled.get(c.id) || 0
  }))
}

/** The chart (an SVG hidden from screen readers: the categories' table above reads the same
 *  figures) and, behind "Show the chart as a table", its figures as a table of their own.
 *  `money` formats minor units. With a `label` (the Overview, where no table is above it),
 *  the SVG is an image named by it instead. */
export function budgetChart (rows, money, label = '') {
  const largest = Math.max(1, ...rows.map((r) => Math.max(r.planned, r.paid + r.scheduled)))
  const span = WIDTH - LABEL - 10
  const scale = (n) => Math.max(0, Math.round((span * n) / largest))
  const height = Math.max(ROW, rows.length * ROW) + 24
  const bars = rows.map((r, i) => {
    const y = 24 + i * ROW
    const paidWidth = scale(r.paid)
    const over = r.paid + r.scheduled > r.planned
    return svg`<g class=${over ? 'over' : ''} data-category=${r.id}>
      <text x="0" y=${y + BAR} class="chart-label">${r.name.length > 22 ? r.name.slice(0, 21) + '…' : r.name}</text>
      <rect class="planned" x=${LABEL} y=${y} width=${scale(r.planned)} height=${BAR}></rect>
      <rect class="paid" x=${LABEL} y=${y + BAR + GAP / 2} width=${paidWidth} height=${BAR}></rect>
      <rect class="scheduled" x=${LABEL + paidWidth} y=${y + BAR + GAP / 2} width=${scale(r.scheduled)} height=${BAR}></rect>
    </g>`
  })
  const legend = [['planned', 'Planned'], ['paid', 'Paid'], ['scheduled', 'Scheduled']].map(([cls, label], i) =>
    svg`<rect class=${cls} x=${LABEL + i * 110} y="2" width="12" height="12"></rect><text x=${LABEL + i * 110 + 16} y="13" class="chart-legend">${label}</text>`)
  return html`<figure class="card budget-chart" data-chart="budget">
    <figcaption>Planned, paid and scheduled by category</figcaption>
    ${label
      ? html`<svg viewBox=${`0 0 ${WIDTH} ${height}`} width="100%" role="img" aria-label=${label}><title>${label}</title>${legend}${bars}</svg>`
      : html`<svg viewBox=${`0 0 ${WIDTH} ${height}`} width="100%" role="presentation" aria-hidden="true" focusable="false">${legend}${bars}</svg>`}
    <details class="chart-figures">
      <summary>Show the chart as a table</summary>
      <table class="chart-table">
        <caption>Planned, paid and scheduled by category</caption>
        <thead><tr><th scope="col">Category</th><th scope="col">Planned</th><th scope="col">Paid</th><th scope="col">Scheduled</th></tr></thead>
        <tbody>${rows.map((r) => html`<tr data-category=${r.id}><th scope="row">${r.name}</th><td>${money(r.planned)}</td><td>${money(r.paid)}</td><td>${money(r.scheduled)}</td></tr>`)}</tbody>
      </table>
    </details>
  </figure>`
}
