// The wedding's tools, a button away (issue 53, point 5): calendar links to subscribe to and
// the members (members.js), the guest list as CSV and a CSV import with its dry-run preview,
// and the wedding's export.
// Each shows only when the person's role may use it (`/access` lists its capability or the
// document access it needs); each route's refusal is said beside its control.

import { html, nothing } from 'lit-html'
import { webhooksView } from './webhooks.js'
import { invitesView } from './invites.js'
import { calendarView, membersView } from './members.js'

export class Tools {
  constructor ({ wedding, token, onChange }) {
    this.base = `/api/weddings/${encodeURIComponent(wedding)}`
    this.wedding = wedding
    this.token = token
    this.onChange = onChange
    this.preview = null // the dry run's answer: { added, changed, unchanged, errors }
    this.file = null // { name, text } chosen for import
    this.busy = false
  }

  headers (extra = {}) {
    return { Authorization: `Bearer ${this.token()}`, ...extra }
  }

  /** Download `path` (with the person's token) as a file named `name`. */
  async download (path, name) {
    const response = await fetch(`${this.base}${path}`, { headers: this.headers() }).catch(() => null)
    if (!response || !response.ok) {
      const body = response ? await response.json().catch(() => ({})) : {}
      return body.detail || 'the server cannot be reached'
    }
    const url = URL.createObjectURL(await response.blob())
    const link = Object.assign(document.createElement('a'), { href: url, download: name })
    document.body.append(link)
    link.click()
    link.remove()
    setTimeout(() => URL.revokeObjectURL(url), 10_000)
    return null
  }

  /** Send the chosen CSV: a dry run (the preview) or the import itself. */
  async importCsv (dryRun) {
    if (!this.file) return 'choose a CSV file first'
    this.busy = true
    this.onChange()
    try {
      const response = await fetch(`${this.base}/guests.csv${dryRun ? '?dry_run=true' : ''}`, {
        method: 'POST',
        headers: this.headers({ 'Content-Type': 'text/csv' }),
        body: this.file.text
      }).catch(() => null)
      const body = response ? await response.json().catch(() => ({})) : {}
      if (response && response.ok) {
        this.preview = dryRun ? body : null
        if (!dryRun) this.file = null
        const bad = dryRun && Array.isArray(body.errors) ? body.errors.length : 0
        return bad ? `${plural(bad, 'row has', 'rows have')} errors, listed below: fix the file and preview again` : null
      }
      if (response && response.status === 422 && Array.isArray(body.rows)) {
        this.preview = { added: [], changed: [], unchanged: [], errors: body.rows }
        return 'the file has errors: nothing was imported'
      }
      return body.detail || 'the server cannot be reached'
    } finally {
      this.busy = false
      this.onChange()
    }
  }
}

const plural = (n, one, many) => `${n} ${n === 1 ? one : many}`

/** The tools panel. */
export function toolsView (ctx) {
  const tools = ctx.tools
  const canCalendar = ctx.can('calendar.tokens')
  const canImport = ctx.canWrite('guests')
  const canExportGuests = ctx.access.docs.guests && ctx.access.docs.guests !== 'none'
  const canExport = ctx.can('weddings.export')
  const csv = ctx.errors.of('guests-csv')
  const wedding = ctx.errors.of('export')
  const act = async (form, field, run, words = (reason) => `Not done: ${reason}.`) => {
    const refused = await run()
    if (refused) ctx.refuse(form, [{ field, message: words(refused) }])
    else ctx.errors.clear(form)
  }
  const previewed = (reason) => `${reason[0].toUpperCase()}${reason.slice(1)}.`
  const choose = async (e) => {
    const file = e.target.files && e.target.files[0]
    tools.preview = null
    tools.file = file ? { name: file.name, text: await file.text() } : null
    ctx.errors.clear('guests-csv')
    ctx.refresh()
  }
  const p = tools.preview
  return html`<section id="tools-panel" class="card tools" aria-labelledby="tools-title" tabindex="-1">
    <header class="panel-head"><h2 id="tools-title">Share and export</h2>
      <button type="button" class="link" aria-label="Close share and export" @click=${() => ctx.showTools(false)}>×</button></header>
    ${canCalendar ? calendarView(ctx) : nothing}
    ${canExportGuests
      ? html`<section data-form="guests-csv" aria-labelledby="csv-title"><h3 id="csv-title">Guest list as CSV</h3>
          <button type="button" @click=${() => act('guests-csv', 'file', () => tools.download('/guests.csv?bom=true', `guests-${tools.wedding}.csv`))}>Download the guest list</button>
          ${canImport
            ? html`<div class="field"><label>Import guests from a CSV file <input name="file" type="file" accept=".csv,text/csv" @change=${choose}
                  aria-describedby=${csv.describedBy('file', p && p.errors.length ? 'csv-row-errors' : null)} aria-invalid=${csv.invalid('file')}></label>${csv.note('file')}</div>
                <div class="actions">
                  <button type="button" ?disabled=${!tools.file || tools.busy} @click=${() => act('guests-csv', 'file', () => tools.importCsv(true), previewed)}>Preview the import</button>
                  <button type="button" class="primary" ?disabled=${!p || p.errors.length > 0 || tools.busy}
                    @click=${() => act('guests-csv', 'file', async () => { const r = await tools.importCsv(false); if (!r) ctx.say('Guests imported.'); return r })}>Import</button>
                </div>
                ${p
                  ? html`<div class="preview" role="region" aria-label="Import preview">
                      <p>${plural(p.added.length, 'guest', 'guests')} to add, ${plural(p.changed.length, 'guest', 'guests')} to change, ${p.unchanged.length} unchanged.</p>
                      ${p.changed.length ? html`<ul>${p.changed.slice(0, 20).map((c) => html`<li>Line ${c.line}: ${c.fields.join(', ')}</li>`)}</ul>` : nothing}
                      ${p.errors.length
                        ? html`<p class="field-error">${plural(p.errors.length, 'row has', 'rows have')} errors; fix the file and preview again:</p>
                            <ul id="csv-row-errors">${p.errors.slice(0, 20).map((r) => html`<li>Line ${r.line}, ${r.field}: ${r.message}</li>`)}</ul>`
                        : nothing}
                    </div>`
                  : nothing}`
            : nothing}
        </section>`
      : nothing}
    ${ctx.can('members.manage') ? membersView(ctx) : nothing}
    ${ctx.can('members.invite') ? invitesView(ctx) : nothing}
    ${ctx.can('webhooks.manage') ? webhooksView(ctx) : nothing}
    ${canExport
      ? html`<section data-form="export" aria-labelledby="export-title"><h3 id="export-title">The whole wedding</h3>
          <p class="muted">Every document, its history, its events and its conversations, as one file.</p>
          <button type="button" name="export" aria-describedby=${wedding.describedBy('export')}
            @click=${() => act('export', 'export', () => tools.download('/export', `wedding-${tools.wedding}.json`))}>Export the wedding</button>${wedding.note('export')}
        </section>`
      : nothing}
  </section>`
}
