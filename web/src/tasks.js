// The tasks view: the wedding's checklist, soonest due first. A task is due on its own day,
// or at an offset from the wedding date ("-6M": six months before), which moves with the
// wedding (the same rule as the server's documents/tasks.py). Ticking a task done is one Yjs
// write of its `done` key, so two people see it at once.

import * as Y from 'yjs'
import { html, nothing } from 'lit-html'
import { repeat } from 'lit-html/directives/repeat.js'
import { LOCAL } from './sync.js'
import { newId } from './model.js'
import { notesField } from './notes.js'
import { historyButton } from './history.js'

const ID = /^[A-Za-z0-9_-]{1,64}$/
const OFFSET = /^([+-])(\d{1,3})([DWM])$/
const DAY = /^\d{4}-\d\d-\d\d$/
const UNITS = { D: ['day', 'days'], W: ['week', 'weeks'], M: ['month', 'months'] }

/** The tasks of a tasks document, as plain objects (entries that break the schema left out). */
export function readTasks (doc) {
  const out = []
  if (!doc) return out
  doc.getMap('tasks').forEach((value, id) => {
    if (!ID.test(id) || !(value instanceof Y.Map)) return
    const title = value.get('title')
    if (typeof title !== 'string' || !title.trim()) return
    const owner = value.get('owner')
    const due = value.get('due')
    const offset = value.get('due_offset')
    out.push({
      id,
      title: title.trim(),
      owner: typeof owner === 'string' && owner.trim() ? owner.trim() : null,
      due: typeof due === 'string' && DAY.test(due) ? due : null,
      due_offset: typeof offset === 'string' && OFFSET.test(offset) ? offset : null,
      done: value.get('done') === true
    })
  })
  return out
}

/** `wedding` (YYYY-MM-DD) moved by `offset` ("-6M"); calendar months, the day clamped to the
 *  month's last (as the server's `offset_from`); null when either does not parse. */
export function offsetFrom (wedding, offset) {
  const found = OFFSET.exec(offset || '')
  if (!found || !DAY.test(wedding || '')) return null
  const [y, m, d] = wedding.split('-').map(Number)
  const count = (found[1] === '-' ? -1 : 1) * Number(found[2])
  let at
  if (found[3] === 'M') {
    const months = y * 12 + (m - 1) + count
    const year = Math.floor(months / 12)
    const month = months - year * 12
    const last = new Date(Date.UTC(year, month + 1, 0)).getUTCDate()
    at = new Date(Date.UTC(year, month, Math.min(d, last)))
  } else {
    at = new Date(Date.UTC(y, m - 1, d + count * (found[3] === 'W' ? 7 : 1)))
  }
  return at.toISOString().slice(0, 10)
}

/** A task's due day: its offset from the wedding date where it has one, else its own day. */
export function dueDate (task, weddingDate) {
  if (task.due_offset) return weddingDate ? offsetFrom(weddingDate, task.due_offset) : null
  return task.due
}

/** "-6M" as people say it: "6 months before". */
export function describeOffset (offset) {
  const found = OFFSET.exec(offset || '')
  if (!found) return ''
  const count = Number(found[2])
  if (!count) return 'on the day'
  const [one, many] = UNITS[found[3]]
  return `${count} ${count === 1 ? one : many} ${found[1] === '-' ? 'before' : 'after'}`
}

/** Tasks soonest due first (no date last), open before done, then by title. */
export function sortTasks (tasks, weddingDate) {
  const keyed = tasks.map((t) => ({ ...t, dueOn: dueDate(t, weddingDate) }))
  return keyed.sort((a, b) => (a.done - b.done) ||
    (a.dueOn === b.dueOn ? 0 : a.dueOn === null ? 1 : b.dueOn === null ? -1 : a.dueOn < b.dueOn ? -1 : 1) ||
    a.title.localeCompare(b.title))
}

function entry (doc, id) {
  const task = doc.getMap('tasks').get(id)
  return task instanceof Y.Map ? task : null
}

export function setDone (doc, id, done) {
  const task = entry(doc, id)
  if (task && task.get('done') !== done) doc.transact(() => task.set('done', done), LOCAL)
}

export function setOwner (doc, id, owner) {
  const task = entry(doc, id)
  if (!task) return
  doc.transact(() => (owner ? task.set('owner', owner) : task.delete('owner')), LOCAL)
}

export function addTask (doc, { title, due, owner }) {
  const id = newId('k-')
  doc.transact(() => {
    const task = new Y.Map()
    doc.getMap('tasks').set(id, task)
    task.set('title', title)
    task.set('done', false)
    if (due) task.set('due', due)
    if (owner) task.set('owner', owner)
    task.set('notes', new Y.Text(''))
  }, LOCAL)
  return id
}

export function removeTask (doc, id) {
  doc.transact(() => doc.getMap('tasks').delete(id), LOCAL)
}

export function tasksView (ctx) {
  const doc = ctx.docs.tasks
  const canWrite = ctx.access.docs.tasks === 'write'
  const weddingDate = ctx.profile && ctx.profile.date
  const tasks = sortTasks(readTasks(doc), weddingDate)
  const members = ctx.threads && ctx.threads.members ? [...ctx.threads.members.entries()] : []
  const nameOf = (sub) => (sub === ctx.access.sub ? `${ctx.access.name} (you)` : ctx.people[sub] || (ctx.threads && ctx.threads.members.get(sub)) || (ctx.threads && ctx.threads.membersLoaded ? 'Someone no longer in the wedding' : '…'))
  const open = tasks.filter((t) => !t.done).length
  const today = new Date().toISOString().slice(0, 10)
  const form = ctx.errors.of('add-task')
  const add = (e) => {
    e.preventDefault()
    const data = Object.fromEntries(new FormData(e.target).entries())
    const title = String(data.title || '').trim()
    const due = String(data.due || '').trim()
    const errors = []
    if (!title) errors.push({ field: 'title', message: 'A task needs a title.' })
    if (due && !DAY.test(due)) errors.push({ field: 'due', message: 'A due date looks like 2027-03-14.' })
    if (errors.length) { ctx.refuse('add-task', errors); return }
    ctx.errors.clear('add-task')
    addTask(doc, { title: title.slice(0, 200), due: due || null, owner: String(data.owner || '') || null })
    e.target.reset()
    ctx.say(`Task ${title} added.`)
  }
  const tick = (task, done) => {
    setDone(doc, task.id, done)
    ctx.say(done ? `${task.title}: done.` : `${task.title}: to do again.`)
  }
  const ownerPicker = (task) => {
    const known = new Set(members.map(([sub]) => sub))
    return html`<select name="owner" aria-label=${`Who does ${task.title}`} @change=${(e) => setOwner(doc, task.id, e.target.value)}>
      <option value="" ?selected=${!task.owner}>Nobody yet</option>
      ${task.owner && !known.has(task.owner) ? html`<option value=${task.owner} selected>${nameOf(task.owner)}</option>` : nothing}
      ${members.map(([sub]) => html`<option value=${sub} ?selected=${sub === task.owner}>${nameOf(sub)}</option>`)}
    </select>`
  }
  return html`
    <section class="view" aria-labelledby="tasks-title">
      <div class="view-head">
        <h2 id="tasks-title">Tasks</h2>${historyButton(ctx, 'tasks')}
        <p class="counts"><span class="pill">${open} to do</span><span class="pill accepted">${tasks.length - open} done</span></p>
      </div>
      ${ctx.access.docs.tasks === 'read'
        ? html`<p class="note" role="note">Read-only: your role (${ctx.access.role}) may view the tasks but not change anything here.</p>`
        : nothing}
      ${weddingDate ? nothing : html`<p class="note" role="note">Set the wedding date (Timeline) to see when the checklist's tasks are due.</p>`}
      <ul class="card tasks" aria-label="Checklist">
        ${repeat(tasks, (t) => t.id, (t) => html`<li class="task ${t.done ? 'done' : ''} ${!t.done && t.dueOn && t.dueOn < today ? 'overdue' : ''}" data-entity=${t.id}>
          <label class="task-done"><input type="checkbox" name="done" .checked=${t.done} ?disabled=${!canWrite}
            @change=${(e) => tick(t, e.target.checked)}> <span class="task-title">${t.title}</span></label>
          <span class="task-due muted">${t.dueOn
            ? html`Due <time datetime=${t.dueOn}>${ctx.local && ctx.local.day ? ctx.local.day(t.dueOn) : t.dueOn}</time>${t.due_offset ? ` (${describeOffset(t.due_offset)})` : ''}`
            : t.due_offset ? describeOffset(t.due_offset) + ' the wedding' : 'No due date'}</span>
          <span class="task-owner">${canWrite ? ownerPicker(t) : t.owner ? nameOf(t.owner) : 'Nobody yet'}</span>
          ${canWrite
            ? html`<details class="task-more"><summary>Notes</summary>${notesField(doc, 'tasks', t.id, `Notes for ${t.title}`)}
                <button type="button" class="link danger" aria-label=${`Remove ${t.title}`}
                  @click=${() => ctx.removed(`${t.title} removed`, () => removeTask(doc, t.id))}>Remove task</button></details>`
            : nothing}
        </li>`)}
      </ul>
      ${canWrite
        ? html`<form class="card add" data-form="add-task" @submit=${add} @input=${form.edited} novalidate aria-labelledby="add-task-title">
            <h3 id="add-task-title">Add a task</h3>
            <div class="field"><label>Title <input name="title" maxlength="200"
              aria-describedby=${form.describedBy('title')} aria-invalid=${form.invalid('title')}></label>${form.note('title')}</div>
            <div class="field"><label>Due <input name="due" type="date"
              aria-describedby=${form.describedBy('due')} aria-invalid=${form.invalid('due')}></label>${form.note('due')}</div>
            <label>Who <select name="owner"><option value="">Nobody yet</option>
              ${members.map(([sub]) => html`<option value=${sub}>${nameOf(sub)}</option>`)}</select></label>
            <button type="submit">Add task</button>
          </form>`
        : nothing}
    </section>`
}
