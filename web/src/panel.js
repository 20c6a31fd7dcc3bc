// The thread panel of one entity (a guest, a table, a timeline item, a budget category): the
// threads anchored to it, the messages of the one shown, a box to write in, and a form to
// start a thread. Opened with the entity's Discuss button (views.js `discussButton`).

import { html, nothing } from 'lit-html'
import { anchoredTo } from './threads.js'
import { when } from './activity.js'
import { formats } from './local.js'

const ROLE_WORDS = { couple: 'The couple', planner: 'The planner', family: 'Family', vendor: 'A vendor', friend: 'A friend' }
const DOC_WORDS = { guests: 'guest', seating: 'table', timeline: 'timeline item', budget: 'budget category' }

/** Threads and unread counts per entity (`doc:id`), for the Discuss buttons. */
export function threadIndex (threads) {
  const index = new Map()
  for (const t of threads) {
    for (const a of Array.isArray(t.anchors) ? t.anchors : []) {
      const key = `${a.doc}:${a.id}`
      const entry = index.get(key) || { count: 0, unread: 0 }
      entry.count += 1
      entry.unread += Number.isInteger(t.unread) ? t.unread : 0
      index.set(key, entry)
    }
  }
  return index
}

/** The Discuss button of an entity row, with its unread badge. */
export function discussButton (ctx, doc, id, name) {
  const entry = ctx.threadIndex.get(`${doc}:${id}`)
  const open = ctx.discussing && ctx.discussing.doc === doc && ctx.discussing.id === id
  return html`<button type="button" class="discuss ${open ? 'open' : ''}" aria-expanded=${open ? 'true' : 'false'}
      title=${`Discuss ${name}`} data-unread=${String(entry ? entry.unread : 0)}
      @click=${() => (open ? ctx.closePanel() : ctx.discuss(doc, id, name))}>Discuss${entry && entry.unread
        ? html` <span class="badge">${entry.unread}<span class="sr-only"> unread</span></span>`
        : entry ? html` <span class="muted">(${entry.count})</span>` : nothing}</button>`
}

function authorName (ctx, author) {
  if (!author || !author.sub) return 'Someone (erased)'
  if (author.sub === ctx.access.sub) return 'You'
  return ctx.names().person(author.sub) || ROLE_WORDS[author.role] || author.sub
}

/** The members whose name or sub starts a word with `query` (case-insensitive), 6 at most. */
export function mentionOptions (members, query, self) {
  const q = query.toLowerCase()
  const found = []
  for (const [sub, name] of members) {
    if (sub === self) continue
    const words = [sub, ...String(name).toLowerCase().split(/\s+/), String(name).toLowerCase()]
    if (words.some((w) => w.toLowerCase().startsWith(q))) found.push({ sub, name: String(name) })
    if (found.length === 6) break
  }
  return found
}

/** The `@` being typed before the caret of `area`: { start, query } or null. */
export function mentionAt (area) {
  const before = area.value.slice(0, area.selectionStart)
  const match = /(?:^|[^\w@])@([^@\s[\]()]{0,30}(?: [^@\s[\]()]{0,30})?)$/.exec(before)
  return match ? { start: before.length - match[1].length - 1, query: match[1] } : null
}

/** Replace the `@query` at `at` in `area` by the composer's link to `option`. */
export function insertMention (area, at, option) {
  const label = option.name.replace(/[[\]\n]/g, ' ').trim() || option.sub
  const link = `@[${label}](${option.sub}) `
  const end = at.start + 1 + at.query.length
  area.setRangeText(link, at.start, end, 'end')
}

/** A message body as shown: each `@[Name](sub)` reads `@Name`, marked as a mention. */
export function withMentions (body) {
  const parts = []
  const link = /@\[([^[\]\n]{1,200})\]\(([^()\s]{1,256})\)/g
  let last = 0
  for (const m of body.matchAll(link)) {
    parts.push(body.slice(last, m.index), html`<span class="mention" title=${m[2]}>@${m[1]}</span>`)
    last = m.index + m[0].length
  }
  parts.push(body.slice(last))
  return parts
}

/** What a sent message's `unnotified_mentions` say, one sentence each (a name once). */
export function unnotifiedLines (missed, nameOf) {
  const lines = []
  for (const m of Array.isArray(missed) ? missed : []) {
    if (!m || typeof m !== 'object') continue
    const who = m.sub ? nameOf(m.sub) || m.name || m.sub : m.name
    let line
    if (m.reason === 'unknown_member') line = `Nobody named ${m.name || m.sub} was notified.`
    else if (m.reason === 'ambiguous_name') line = `${m.name} was not notified: two members have that name; pick one after typing @.`
    else if (m.reason === 'cannot_see_thread') line = `${who} was not notified: they cannot see this thread.`
    else if (m.reason === 'not_a_member') line = `${who} was not notified: not a member of this wedding.`
    else continue
    if (!lines.includes(line)) lines.push(line)
  }
  return lines
}

export function threadPanel (ctx) {
  const d = ctx.discussing
  const store = ctx.threads
  const list = anchoredTo(store.threads, d.doc, d.id)
  if (!d.thread && list.length) {
    d.thread = list[0].id
    store.watch(d.thread)
  }
  const thread = d.thread ? store.threads.find((t) => t.id === d.thread) : null
  const messages = thread ? store.messages.get(thread.id) : null
  if (thread && thread.unread && messages && messages.length && document.visibilityState === 'visible') store.markRead(thread.id)
  const pending = thread ? store.pending(thread.id) : []

  const start = async (e) => {
    e.preventDefault()
    const form = e.target
    const subject = String(new FormData(form).get('subject') || '').trim()
    if (!subject) { ctx.refuse('start-thread', [{ field: 'subject', message: 'A thread needs a subject.' }]); return }
    const button = form.querySelector('button[type=submit]')
    button.disabled = true
    try {
      const made = await store.create(subject.slice(0, 200), d.doc, d.id)
      ctx.errors.clear('start-thread')
      form.reset()
      if (ctx.discussing === d) {
        ctx.openThread(made.id)
        requestAnimationFrame(() => document.querySelector('#thread-panel textarea[name=body]')?.focus())
      }
      ctx.say(`Thread ${subject} started.`)
    } catch (error) {
      ctx.refuse('start-thread', [{ field: 'subject', message: `Could not start the thread: ${error.message}.` }])
    } finally {
      button.disabled = false
    }
  }
  const send = (e) => {
    e.preventDefault()
    const form = e.target.closest('form')
    const body = String(new FormData(form).get('body') || '')
    if (!body.trim()) { ctx.refuse('send-message', [{ field: 'body', message: 'Write something first.' }]); return }
    const size = new TextEncoder().encode(body).length
    if (size > 8192) { ctx.refuse('send-message', [{ field: 'body', message: `A message has at most 8 KiB of text; this one has ${Math.ceil(size / 1024)} KiB.` }]); return }
    ctx.errors.clear('send-message')
    store.post(thread.id, body)
    ctx.mentioning = null
    form.reset()
    form.querySelector('textarea').focus()
  }
  const missed = thread ? unnotifiedLines(store.unnotified.get(thread.id), (sub) => store.members.get(sub) || ctx.names().person(sub)) : []
  const sendForm = ctx.errors.of('send-message')
  const startForm = ctx.errors.of('start-thread')
  const picking = ctx.mentioning // { at, options, active } while an @ is being typed
  const pick = (area, option) => {
    insertMention(area, picking.at, option)
    ctx.mentioning = null
    ctx.refresh()
    area.focus()
  }
  const keys = (e) => {
    if (picking && picking.options.length) {
      const n = picking.options.length
      if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
        e.preventDefault()
        picking.active = (picking.active + (e.key === 'ArrowDown' ? 1 : n - 1)) % n
        ctx.refresh()
        return
      }
      if ((e.key === 'Enter' && !e.ctrlKey && !e.metaKey) || e.key === 'Tab') {
        e.preventDefault()
        pick(e.target, picking.options[picking.active])
        return
      }
      if (e.key === 'Escape') {
        e.stopPropagation()
        ctx.mentioning = null
        ctx.refresh()
        return
      }
    }
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) send(e)
  }
  const suggest = (area) => {
    const at = mentionAt(area)
    const options = at ? mentionOptions(store.members, at.query, ctx.access.sub) : []
    const was = ctx.mentioning
    ctx.mentioning = options.length ? { at, options, active: 0 } : null
    if (was || ctx.mentioning) ctx.refresh()
    return at !== null && !options.length
  }
  const typing = (e) => {
    sendForm.edited(e)
    const area = e.target
    // A name the directory does not hold: someone added since it was loaded, perhaps.
    if (suggest(area)) store.refreshMembers().then(() => { if (document.activeElement === area) suggest(area) })
  }

  return html`<section id="thread-panel" class="thread-panel card" role="dialog" aria-modal="false"
      aria-labelledby="thread-panel-title" tabindex="-1" @keydown=${(e) => { if (e.key === 'Escape') ctx.closePanel() }}>
    <header class="panel-head">
      <h2 id="thread-panel-title">Discuss ${d.name}</h2>
      <button type="button" class="link" aria-label="Close the discussion" @click=${() => ctx.closePanel()}>×</button>
    </header>
    <p class="muted">Threads about this ${DOC_WORDS[d.doc] || 'entry'}.${store.loaded ? '' : ' Loading…'}</p>
    ${list.length
      ? html`<ul class="thread-list" aria-label="Threads">
          ${list.map((t) => html`<li>
            <button type="button" class="thread-pick ${t.id === d.thread ? 'current' : ''}" aria-pressed=${t.id === d.thread ? 'true' : 'false'}
              @click=${() => ctx.openThread(t.id)}>
              <span class="subject">${t.subject}</span>
              ${t.status !== 'open' ? html`<span class="pill">${t.status}</span>` : nothing}
              ${t.priority !== 'normal' ? html`<span class="pill declined">${t.priority}</span>` : nothing}
              ${t.unread ? html`<span class="badge">${t.unread}<span class="sr-only"> unread</span></span>` : nothing}
            </button>
          </li>`)}
        </ul>`
      : store.loaded ? html`<p class="muted">No threads yet. Start one below.</p>` : nothing}
    ${thread
      ? html`<section class="thread" aria-label=${`Thread ${thread.subject}`}>
          <div class="thread-head">
            <h3>${thread.subject}</h3>
            <button type="button" class="link" @click=${async () => {
              const to = thread.status === 'open' ? 'resolved' : 'open'
              const refused = await store.setStatus(thread.id, to)
              ctx.say(refused ? `Could not change the thread: ${refused}.` : `Thread ${thread.subject} ${to === 'open' ? 'reopened' : 'resolved'}.`)
            }}>${thread.status === 'open' ? 'Resolve' : 'Reopen'}</button>
          </div>
          <ol class="messages" aria-label="Conversation">
            ${(messages || []).map((m) => html`<li class="message ${m.deleted ? 'deleted' : ''}" data-message=${m.id}>
              <div class="message-meta"><strong>${authorName(ctx, m.author)}</strong>
                <time class="muted" datetime=${m.created_at} title=${formats().dateTime(m.created_at)}>${when(m.created_at)}</time>
                ${m.edited_at ? html`<span class="muted">(edited)</span>` : nothing}</div>
              <p class="body">${m.deleted ? html`<em class="muted">Message deleted</em>` : withMentions(m.body)}</p>
            </li>`)}
            ${pending.map((m) => html`<li class="message pending" data-message=${m.id}>
              <div class="message-meta"><strong>You</strong>
                <span class="muted">${m.error ? html`Not sent: ${m.error}` : 'Sending…'}</span>
                ${m.error ? html`<button type="button" class="link danger" @click=${() => store.discard(m.id)}>Discard</button>` : nothing}</div>
              <p class="body">${withMentions(m.body)}</p>
            </li>`)}
            ${messages && !messages.length && !pending.length ? html`<li class="muted">No messages yet.</li>` : nothing}
          </ol>
          <form class="send-form" data-form="send-message" novalidate @submit=${send} aria-label="Write a message">
            <div class="field"><label>Message <textarea name="body" rows="3" required @keydown=${keys} @input=${typing}
              aria-autocomplete="list" aria-controls="mention-options"
              aria-activedescendant=${picking ? `mention-${picking.active}` : nothing}
              aria-describedby=${sendForm.describedBy('body', missed.length ? 'unnotified-note' : null)} aria-invalid=${sendForm.invalid('body')}
              placeholder="Write a message (@ names someone; Ctrl+Enter sends)"></textarea></label>${sendForm.note('body')}
              ${missed.length ? html`<p id="unnotified-note" class="note unnotified" role="status">${missed.join(' ')}</p>` : nothing}
              <ul id="mention-options" class="mention-options" role="listbox" aria-label="People to mention" ?hidden=${!picking}>
                ${picking ? picking.options.map((o, i) => html`<li id=${`mention-${i}`} role="option" aria-selected=${i === picking.active ? 'true' : 'false'}
                  @mousedown=${(e) => { e.preventDefault(); pick(e.target.closest('form').querySelector('textarea'), o) }}>${o.name} <span class="muted">${o.sub}</span></li>`) : nothing}
              </ul></div>
            <button type="submit" class="primary">Send</button>
          </form>
        </section>`
      : nothing}
    ${d.doc
      ? html`<form class="start-form" data-form="start-thread" novalidate @submit=${start} @input=${startForm.edited} aria-label="Start a thread">
          <h3>Start a thread</h3>
          <div class="field"><label>Subject <input name="subject" required maxlength="200" autocomplete="off" placeholder=${`About ${d.name}`}
            aria-describedby=${startForm.describedBy('subject')} aria-invalid=${startForm.invalid('subject')}></label>${startForm.note('subject')}</div>
          <button type="submit">Start thread</button>
        </form>`
      : nothing}
  </section>`
}
