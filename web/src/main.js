// The planner app: signs in from the link, opens the wedding's documents the person may read,
// and renders the views, the presence of others, the connection status and the conflicts.

import { html, nothing, render } from 'lit-html'
import { TokenKeeper, claimsOf, forgetToken, takeToken } from './session.js'
import {
  Devices, confirmEmailView, devicesView, lastWedding, pageHost, pageOf, post, rememberWedding, resumeSession, showInvitation,
  showSetup, showSignIn, showSignInLink, takeCode
} from './people.js'
import { KINDS, WeddingSync, collabSocket, forgetPerson, forgetWedding } from './sync.js'
import {
  conflictKey, readBudget, readGuests, readProfile, readSeating, readTimeline, seatFor, seatGuest, seatGuestAt,
  seatingConflicts, timelineOverlaps, unseatGuest, updateGuest
} from './model.js'
import { avatar, budgetView, guestsView, printPage, seatingView, timelineView } from './views.js'
import { readTasks, tasksView } from './tasks.js'
import { ActivityFeed, describe, placeOf, when } from './activity.js'
import { ThreadStore } from './threads.js'
import { threadIndex, threadPanel } from './panel.js'
import { LostWrites, lostList } from './lost.js'
import { RsvpAnswers } from './answers.js'
import { RsvpLinks, SECTION as RSVP_SECTION, TITLE as RSVP_TITLE, rsvpLinksView } from './rsvplinks.js'
import { OperationQueue } from './operations.js'
import { EditState, FormErrors } from './forms.js'
import { History } from './undo.js'
import { Inbox, bell, inboxView } from './inbox.js'
import { DevicePush } from './push.js'
import { PhoneTexts } from './texts.js'
import { Tools, toolsView } from './tools.js'
import { Webhooks } from './webhooks.js'
import { Invites } from './invites.js'
import { CalendarTokens, Members } from './members.js'
import { followScroll } from './guestlist.js'
import { householdMove, householdSplits, householdsOf, peopleAt, readHouseholds, readMenu, seatHousehold } from './households.js'
import { Delays } from './delays.js'
import { RunSheetLinks } from './runsheets.js'
import { DocHistory, historyView } from './history.js'
import { useFormats } from './local.js'
import { WeddingDay, dayModeSwitch, dayPanel } from './weddingday.js'
import { Emergencies, emergencyView } from './emergency.js'
import { defaultAccess } from './schema.js'
import { fieldsOf, operateFields, shownValue } from './fields.js'

// Where the conflicts panel opens by itself (on a narrower screen it is one line).
const WIDE = '(min-width: 720px)'
const TITLES = { guests: 'Guests', seating: 'Seating', timeline: 'Timeline', budget: 'Budget', tasks: 'Tasks', overview: 'Overview', [RSVP_SECTION]: RSVP_TITLE }
const OVERVIEW_ROLES = new Set(['couple', 'planner'])

// The Overview (overview.js): its own chunk, loaded when first shown.
let overviewModule = null
function overviewSection (ctx) {
  if (overviewModule) return overviewModule.overviewView(ctx)
  import('./overview.js').then((m) => { overviewModule = m; ctx.render() }, () => {})
  return html`<p class="muted">Loading the overview…</p>`
}
// The server's default matrix (schema.js, "Who may connect"): used only when the app opens
// with no network and has never asked the server what this person may open.
const DEFAULT_ACCESS = defaultAccess
const root = document.getElementById('app')

/** The couple's names as the header says them ("Maya & Jordan"), never the wedding's id. */
function coupleNames (profile) {
  const names = profile && Array.isArray(profile.names) ? profile.names.filter(Boolean) : []
  return names.length ? names.join(' & ') : 'Your wedding'
}

function showMessage (title, text) {
  render(html`<main class="signed-out" role="main"><h1>${title}</h1><p>${text}</p></main>`, pageHost(root))
}

// A local demo server (--allow-anonymous on this machine) hands out its sign-in links, so the
// first page is never a dead end; any other server answers 404 and the page says how to get in.
async function fetchLocalDemo () {
  try {
    const response = await fetch('/api/local-demo', { cache: 'no-store' })
    return response.ok ? await response.json() : null
  } catch {
    return null
  }
}

async function fetchAccess (wedding, token, sub) {
  const key = `crdt-server.access:${wedding}:${sub}`
  try {
    const response = await fetch(`/api/weddings/${encodeURIComponent(wedding)}/access`, {
      headers: { Authorization: `Bearer ${token}` }
    })
    if (response.status === 410) return { deleted: true }
    if (response.status === 401 || response.status === 403) {
      const problem = await response.json().catch(() => ({}))
      return { refused: problem.detail || 'not allowed' }
    }
    if (!response.ok) throw new Error(`HTTP ${response.status}`)
    const access = await response.json()
    localStorage.setItem(key, JSON.stringify(access))
    return access
  } catch {
    const kept = localStorage.getItem(key)
    if (kept) return JSON.parse(kept)
    return null
  }
}

// The service worker keeps the shell (the rich-text editor's chunk too) for the next visit.
// On a first visit it is registered only once the wedding has synced (or the page has had
// a few seconds): its downloads would otherwise share a slow phone's bandwidth with the
// documents the person is waiting for. Once it runs, registering again is only its update
// check, done at once.
let settled
const appSettled = new Promise((resolve) => { settled = resolve })

function registerWorker () {
  if (!('serviceWorker' in navigator)) return
  const register = () => navigator.serviceWorker.register('/app/sw.js', { scope: '/app/' }).catch(() => {})
  if (navigator.serviceWorker.controller) { register(); return }
  const loaded = document.readyState === 'complete' ? Promise.resolve() : new Promise((resolve) => addEventListener('load', resolve, { once: true }))
  loaded.then(() => Promise.race([appSettled, new Promise((resolve) => setTimeout(resolve, 8000))])).then(register)
}

async function start () {
  registerWorker()
  const page = pageOf(location.pathname)
  const code = page === 'sign-in' || page === 'invite' ? takeCode() : null
  if (code && page === 'sign-in') { settled(); showSignInLink(root, code, signedIn); return }
  if (code && page === 'invite') { settled(); showInvitation(root, code, signedIn); return }
  if (page === 'new') { settled(); showSetup(root, created); return }
  // A link's token (an operator's, the demo's ROLE URL lines): as before, for this tab.
  const token = takeToken()
  if (token) { await openLinkToken(token); return }
  // This device's session: a short token for the wedding used last, while its cookie lives.
  const last = lastWedding()
  let session = await resumeSession(last)
  if (session && session.lost && last) {
    // Removed from the wedding used last, or the session ended while this device was away:
    // what it kept of that wedding goes before anything opens (the next wedding, if any).
    await forgetPerson(last, keptSub(last))
    session = session.lost.endsWith(':not-a-member') ? await resumeSession(null) : null
  }
  if (session && session.token) { await openPlanner(session.token, { device: true, weddings: session.weddings }); return }
  if (session && session.offline && last) {
    // No network: the local copy opens, edits queue, and a token comes with the network.
    const kept = keptAccess(last)
    if (kept) { new PlannerApp(last, null, kept, { device: true, weddings: [] }).mount(); return }
  }
  settled()
  showSignIn(root, { demo: await fetchLocalDemo() })
}

/** Signed in by a sign-in link or an invitation: this device's session is set (its cookie),
 *  and the answer carries the first access token. */
function signedIn (data) {
  history.replaceState(null, '', '/app/')
  if (!data.wedding || !data.token) {
    showMessage('Signed in', 'You are signed in on this device, but no wedding lists you yet. Ask the couple or their planner for an invitation.')
    return
  }
  openPlanner(data.token, { device: true, weddings: data.weddings || [{ wedding: data.wedding, role: data.role }] })
}

/** A wedding was created: a signed-in creator (the local operator) opens it; anyone else
 *  gets their sign-in link by email. */
async function created (data, body) {
  history.replaceState(null, '', '/app/')
  if (data.signed_in) {
    // The local operator, signed in as the couple on this device: the token comes from
    // the device session the answer set.
    rememberWedding(data.id)
    const session = await resumeSession(data.id)
    if (session && session.token) { await openPlanner(session.token, { device: true, weddings: session.weddings }); return }
  }
  showMessage('Check your mail', body.email
    ? `The wedding is created. A sign-in link is on its way to ${body.email}; open it on this device to start planning.`
    : 'The wedding is created. Ask for your sign-in link on the sign-in page.')
}

async function openLinkToken (token) {
  const claims = claimsOf(token)
  if (!claims) {
    forgetToken()
    showSignIn(root, { demo: await fetchLocalDemo() })
    return
  }
  if (claims.exp < Date.now() / 1000) {
    forgetToken()
    showMessage('Signed out', 'Your sign-in link has expired. Ask for a new one.')
    return
  }
  await openPlanner(token, { device: false, weddings: [] })
}

/** The access kept on this device for the wedding opened last (offline start). */
function keptAccess (wedding) {
  try {
    const kept = JSON.parse(localStorage.getItem(`crdt-server.access:${wedding}`) || 'null')
    return kept && kept.docs ? kept : null
  } catch {
    return null
  }
}

/** Whose the access kept for the device's wedding `wedding` is (null: not known). */
function keptSub (wedding) {
  const kept = keptAccess(wedding)
  return kept && typeof kept.sub === 'string' ? kept.sub : null
}

/** What this person may open, as this device last heard it from the server (null if never). */
function keptAccessOf (wedding, sub) {
  try {
    const kept = JSON.parse(localStorage.getItem(`crdt-server.access:${wedding}:${sub}`) || 'null')
    return kept && kept.docs && kept.sub === sub ? kept : null
  } catch {
    return null
  }
}

async function openPlanner (token, { device, weddings }) {
  const claims = claimsOf(token)
  if (!claims) { showSignIn(root, { demo: null }); return }
  const kept = keptAccessOf(claims.wedding, claims.sub)
  if (kept) {
    // A repeat visit: the wedding opens at once from the access kept on this device and the
    // local copy of its documents; the server's answer follows (PlannerApp.accessAnswered).
    if (device) rememberWedding(claims.wedding)
    const app = new PlannerApp(claims.wedding, token, kept, { device, weddings })
    app.mount()
    fetchAccess(claims.wedding, token, claims.sub).then((fresh) => app.accessAnswered(fresh))
    return
  }
  // The wedding's socket opens while the server is asked what this person may open (the
  // app's usual transport; closed again if the answer says otherwise or refuses).
  // The page says which transport this server uses (the server writes it in).
  const hint = document.querySelector('meta[name="crdt-app-transport"]')
  const socket = hint && hint.content === 'sync' ? null : collabSocket(claims.wedding)
  let access = await fetchAccess(claims.wedding, token, claims.sub)
  if (socket && access && (access.deleted || access.refused)) socket.destroy()
  if (access && access.deleted) {
    if (!device) forgetToken()
    await forgetWedding(claims.wedding)
    showMessage('Wedding deleted', 'This wedding was deleted. Its copy on this device has been removed.')
    return
  }
  if (access && access.refused) {
    if (!device) forgetToken()
    showMessage('Signed out', `The server refused this sign-in: ${access.refused}.`)
    return
  }
  if (!access) {
    const docs = DEFAULT_ACCESS[claims.role] || DEFAULT_ACCESS.friend
    access = { wedding: claims.wedding, sub: claims.sub, name: claims.name || claims.sub, role: claims.role, docs }
  }
  if (device) {
    rememberWedding(claims.wedding)
    try { localStorage.setItem(`crdt-server.access:${claims.wedding}`, JSON.stringify(access)) } catch {}
  }
  new PlannerApp(claims.wedding, token, access, { device, weddings, socket: access.transport === 'sync' ? null : socket }).mount()
  if (socket && access.transport === 'sync') socket.destroy()
}

const PEOPLE_KEY = (wedding) => `crdt-server.people:${wedding}`

/** Names of the people of a wedding seen on this device (the events name only their sub). */
function loadPeople (wedding) {
  try {
    const kept = JSON.parse(localStorage.getItem(PEOPLE_KEY(wedding)) || '{}')
    return kept && typeof kept === 'object' ? kept : {}
  } catch {
    return {}
  }
}

function savePeople (wedding, people) {
  try {
    localStorage.setItem(PEOPLE_KEY(wedding), JSON.stringify(people))
  } catch {}
}

class PlannerApp {
  /** `device`: the token comes from this device's session (people.js), `weddings` lists the
   *  person's weddings for the switcher. */
  constructor (wedding, token, access, { device = false, weddings = [], socket = null } = {}) {
    this.wedding = wedding
    this.access = access
    this.device = device
    this.weddings = weddings
    this.devices = null // the devices panel, while open
    this.you = null // this device's person (a device session): their confirmed address
    this.reconnectOnToken = token === null
    this.filters = { query: '', rsvp: '', side: '', household: '', dietary: '' }
    this.editing = null
    this.entity = null
    this.timelineDay = null // the timeline's day shown (YYYY-MM-DD); null: the wedding's
    this.form = null // the open edit form's EditState
    this.errors = new FormErrors(() => this.render())
    this.signedOut = null
    this.lostAccess = null // why this person lost the wedding (the screen is cleared)
    this.leaving = null // { all, count, waiting }: signing out with changes not yet sent
    this.deleted = false
    this.announcement = ''
    this.people = loadPeople(wedding)
    this.discussing = null // { doc, id, name, thread } while the thread panel is open
    this.mentioning = null // the composer's @ suggestions (panel.js)
    this.selected = new Set() // guests selected for a bulk action (guestlist.js)
    this.listTop = undefined // where the guest list sits on the screen (its window)
    this.threads = new ThreadStore({
      wedding,
      sub: access.sub,
      token: () => this.keeper.token,
      onChange: () => this.sync.changed()
    })
    this.lost = new LostWrites({
      wedding,
      sub: access.sub,
      token: () => this.keeper.token,
      canResolve: () => this.can('conflicts.resolve'),
      onChange: () => this.sync.changed()
    })
    this.inbox = new Inbox({
      wedding,
      sub: access.sub,
      token: () => this.keeper.token,
      onChange: () => this.sync.changed()
    })
    this.inboxOpen = false
    this.emergencies = new Emergencies({ wedding, sub: access.sub, token: () => this.keeper.token, onChange: () => this.sync.changed() })
    this.emergencyOpen = false
    this.push = new DevicePush({ wedding, sub: access.sub, token: () => this.keeper.token, key: access.push_key, onChange: () => this.sync.changed() })
    this.texts = new PhoneTexts({ token: () => this.keeper.token, onChange: () => this.sync.changed() })
    this.day = new WeddingDay({ wedding, sub: access.sub, token: () => this.keeper.token, onChange: () => this.sync.changed(), onRefused: (form, errors) => this.refuse(form, errors) })
    this.tools = new Tools({ wedding, token: () => this.keeper.token, onChange: () => this.sync.changed() })
    this.toolsOpen = false
    this.webhooks = new Webhooks({ wedding, token: () => this.keeper.token, onChange: () => this.sync.changed() })
    this.invites = new Invites({ wedding, token: () => this.keeper.token, onChange: () => this.sync.changed() })
    this.members = new Members({ wedding, sub: access.sub, token: () => this.keeper.token, onChange: () => this.sync.changed() })
    this.calendarTokens = new CalendarTokens({ wedding, token: () => this.keeper.token, onChange: () => this.sync.changed() })
    this.docHistory = new DocHistory({ wedding, token: () => this.keeper.token, onChange: () => this.sync.changed() })
    this.delays = new Delays({ wedding, token: () => this.keeper.token, onChange: () => this.sync.changed() })
    this.runSheets = new RunSheetLinks({ wedding, token: () => this.keeper.token, onChange: () => this.sync.changed() })
    this.answers = new RsvpAnswers({ wedding, token: () => this.keeper.token, onChange: () => this.sync.changed() })
    this.rsvpLinks = new RsvpLinks({ wedding, token: () => this.keeper.token, onChange: () => this.sync.changed() })
    this.feed = new ActivityFeed({
      wedding,
      sub: access.sub,
      token: () => this.keeper.token,
      onChange: () => this.sync.changed(),
      onGone: () => this.gone(),
      onEvents: (events) => { this.learnNames(events); this.threads.onEvents(events); this.lost.onEvents(events); this.inbox.onEvents(events); this.answers.onEvents(events); if (this.overview) this.overview.onEvents(events); this.dayEvents(events) }
    })
    this.ops = new OperationQueue({
      wedding,
      sub: access.sub,
      token: () => this.keeper.token,
      onChange: () => this.sync.changed(),
      onRefused: (entry, detail, problem) => this.refusedOperation(entry, detail, problem),
      onGone: () => this.gone()
    })
    this.keeper = new TokenKeeper(token, {
      wedding: device ? wedding : null,
      onToken: (fresh, body) => {
        // A device session's sockets outlive the token; they reconnect only after a close.
        this.sync.setToken(fresh, { reconnect: !device || this.reconnectOnToken })
        this.reconnectOnToken = false
        if (body && Array.isArray(body.weddings)) this.weddings = body.weddings
        this.threads.reconnect()
      },
      onSignedOut: (reason) => this.signOut(reason),
      onLost: (problem) => this.loseAccess(problem.type.endsWith(':not-a-member')
        ? 'You are no longer a member of this wedding.'
        : 'Your session on this device ended.')
    })
    this.sync = new WeddingSync({
      wedding,
      token,
      access,
      onChange: () => this.render(),
      onClosed: (room, event) => this.closed(room, event),
      onDocChanged: () => this.docChanged(),
      socket
    })
    this.sync.setUser({ name: access.name })
    this.history = this.newHistory()
    this.toast = null // { text, action }: the last removal, with its Undo
    this.conflictsOpen = null // the conflicts panel as its person left it (null: by the width)
  }

  /** A check-in, a delay or an emergency of the day: the day's panel is read again. */
  dayEvents (events) {
    if (this.sections.includes('timeline') && events.some((e) => typeof e.type === 'string' && e.type.startsWith('day.'))) this.day.refresh()
  }

  /** Names the events say (a member who joined): the feed names them from then on. */
  learnNames (events) {
    let learned = false
    for (const e of events) {
      if (e.type === 'member.joined' && e.data && typeof e.data.sub === 'string' && typeof e.data.name === 'string' && this.people[e.data.sub] !== e.data.name) {
        this.people[e.data.sub] = e.data.name
        learned = true
      }
    }
    if (learned) savePeople(this.wedding, this.people)
  }

  /** Undo and redo across the rooms' documents as they are now. */
  newHistory () {
    return new History(
      Object.fromEntries(Object.entries(this.sync.rooms).map(([kind, room]) => [kind, room.doc])),
      { onChange: () => this.sync.changed() }
    )
  }

  /** A room's Y.Doc was replaced (its client id was refused, 4409: sync.js): the undo
   *  history starts again on the new documents (its steps were items of the old one), and
   *  the views bind to it at once, before another event could write to the old one. */
  docChanged () {
    this.history.destroy()
    this.history = this.newHistory()
    this.toast = null
    this.render()
  }

  get sections () {
    const kinds = KINDS.filter((kind) => this.access.docs[kind] && this.access.docs[kind] !== 'none')
    // Guests' answers (rsvplinks.js): a screen of its own, for who makes RSVP links.
    const answers = kinds.includes('guests') && this.can('rsvp.links') ? [RSVP_SECTION] : []
    return [...kinds, ...answers, ...(OVERVIEW_ROLES.has(this.access.role) ? ['overview'] : [])]
  }

  get section () {
    const wanted = location.hash.replace(/^#/, '')
    return this.sections.includes(wanted) ? wanted : this.sections[0]
  }

  mount () {
    this.host = pageHost(root)
    addEventListener('hashchange', () => {
      if (this.section === 'timeline' && this.sections.includes('timeline')) this.day.refresh() // the planner's switch makes no event
      this.editing = null
      this.form = null
      this.publishPresence()
      this.render()
      scrollTo(0, 0)
      document.getElementById('main')?.focus({ preventScroll: true })
    })
    this.publishPresence()
    addEventListener('keydown', (e) => this.shortcut(e))
    this.listCheck = followScroll(this)
    matchMedia(WIDE).addEventListener('change', () => this.render()) // the conflicts panel
    this.feed.start()
    this.threads.start()
    this.inbox.start()
    if (this.device) {
      // Whether this person has a confirmed address: without one, "Confirm your email".
      this.you = new Devices({ onChange: () => this.render() })
      this.you.load()
    }
    this.openFromPush()
    this.lost.start()
    this.answers.start()
    if (this.sections.includes('timeline')) {
      this.day.refresh()
      setInterval(() => this.day.refresh(), 60000) // live states move with the clock
    }
    addEventListener('online', () => {
      if (!this.keeper.token) this.keeper.refresh() // opened offline: the token comes now
      this.feed.reconnect(); this.threads.reconnect(); this.lost.refresh(); this.inbox.refresh(); this.answers.refresh(); this.ops.kick()
      this.day.queue.kick(); this.day.refresh()
    })
    if (!this.keeper.token && navigator.onLine) this.keeper.refresh()
    this.ops.kick()
    this.render()
    // Presence entries of others time out; re-render so a departed person disappears.
    setInterval(() => this.render(), 5000)
  }

  publishPresence () {
    this.sync.setPresence({ section: this.section, entity: this.entity, at: Date.now() })
  }

  /** Show day `day` (YYYY-MM-DD) of the timeline (the day switcher, a new item's day). */
  showDay (day) {
    this.timelineDay = day
    this.render()
  }

  setEntity (id, editing = true) {
    this.entity = id
    this.editing = editing ? id : null
    if (!this.form || this.form.entity !== this.editing) this.form = null
    this.publishPresence()
    this.render()
  }

  /** The open edit form's state for entry `id` (made from `values()` when it opens). */
  editState (id, values) {
    if (!this.form || this.form.entity !== id) this.form = new EditState(id, values())
    return this.form
  }

  /** Refuse form `form` (see forms.js): the reasons beside their controls, said aloud too. */
  refuse (form, errors) {
    this.announcement = errors.map((e) => e.message).join(' ')
    this.errors.refuse(form, errors)
  }

  /** The server refused a queued operation for good: its reason goes beside the control it
   *  came from (the guest's form, reopened with what was typed, or the row's control). */
  refusedOperation (entry, detail, problem) {
    const { op } = entry
    const message = `Not saved: ${detail}`
    if (op.op === 'assign_seat' || op.op === 'unassign_seat') {
      this.refuse(`seat-${op.guest_id}`, [{ field: 'table', message }])
    } else if (op.op === 'update_guest' && entry.form) {
      const guest = this.guests && this.guests.find((g) => g.id === op.guest_id)
      if (guest) this.setEntity(op.guest_id)
      const state = guest && this.form
      const answers = fieldsOf('guests').filter((f) => operateFields('guests', 'update_guest').includes(f.name))
      const typed = Object.fromEntries(answers.map((f) => [f.name, shownValue(f, op[f.name])]))
      if (state) for (const name of Object.keys(typed)) if (name in op) state.typed(name, typed[name])
      const named = problem && Array.isArray(problem.errors) && problem.errors.find((e) => e && e.field in typed)
      this.refuse(entry.form, [{ field: named ? named.field : Object.keys(typed).find((name) => name in op), message }])
    } else if (op.guest_id) {
      this.refuse(`rsvp-${op.guest_id}`, [{ field: 'rsvp', message }])
    } else {
      this.say(message)
    }
  }

  /** Open the thread panel of one entity (`doc` is its document, `id` its id). */
  discuss (doc, id, name) {
    const previous = this.discussing
    if (previous && previous.thread) this.threads.unwatch(previous.thread)
    this.discussing = { doc, id, name, thread: null }
    this.render()
    requestAnimationFrame(() => document.getElementById('thread-panel')?.focus())
  }

  showHistory (kind) {
    this.docHistory.open(kind)
    requestAnimationFrame(() => document.getElementById('history-panel')?.focus())
  }

  showTools (open = true) {
    this.toolsOpen = open
    if (open && this.can('webhooks.manage')) this.webhooks.load()
    if (open && this.can('members.invite')) this.invites.load()
    if (open && this.can('members.manage')) this.members.load()
    if (open && this.can('calendar.tokens')) this.calendarTokens.load()
    this.render()
    if (open) requestAnimationFrame(() => document.getElementById('tools-panel')?.focus())
  }

  /** Open or close the Emergency panel (raise one; who has seen yours). */
  showEmergency (open = true) {
    this.emergencyOpen = open
    this.emergencies.show(open, () => this.feed.events)
    this.render()
    if (open) requestAnimationFrame(() => document.getElementById('emergency-panel')?.focus())
  }

  showInbox (open = true) {
    this.inboxOpen = open
    this.render()
    if (open) requestAnimationFrame(() => document.getElementById('inbox-panel')?.focus())
  }

  /** Open the thread a notification is about, in the panel of the entry it is anchored to. */
  async openNotification (item) {
    if (item.reason === 'task.due' && typeof item.ref === 'string' && this.sections.includes('tasks')) {
      this.inboxOpen = false
      this.emergencyOpen = false
      this.reveal({ section: 'tasks', entity: item.ref })
      return
    }
    const tid = item.thread && item.thread.id
    if (!tid) return
    let thread = this.threads.threads.find((t) => t.id === tid)
    if (!thread) {
      await this.threads.refresh()
      thread = this.threads.threads.find((t) => t.id === tid)
    }
    const anchor = thread && Array.isArray(thread.anchors) ? thread.anchors[0] : null
    this.inboxOpen = false
    this.emergencyOpen = false
    this.discuss(anchor ? anchor.doc : null, anchor ? anchor.id : null, (item.thread && item.thread.subject) || 'a thread')
    this.openThread(tid)
  }

  /** Show one thread of the open panel (its messages, live, marked read). */
  openThread (tid) {
    if (!this.discussing) return
    if (this.discussing.thread && this.discussing.thread !== tid) this.threads.unwatch(this.discussing.thread)
    this.discussing.thread = tid
    this.threads.watch(tid)
    this.render()
  }

  closePanel () {
    const was = this.discussing
    if (!was) return
    this.mentioning = null
    if (was.thread) this.threads.unwatch(was.thread)
    this.discussing = null
    this.render()
    const button = document.querySelector(`main [data-entity="${CSS.escape(was.id)}"] button.discuss`)
    button?.focus()
  }

  /** Whether the person's role has `capability` (`/access` lists them, after the operator's
   *  matrix); an older server that lists none leaves the server to refuse (403). */
  can (capability) {
    return !Array.isArray(this.access.capabilities) || this.access.capabilities.includes(capability)
  }

  /** Whether the person may change any document here (else no Undo and Redo). */
  get writesSomething () {
    return KINDS.some((kind) => this.canWrite(kind))
  }

  /** Whether Share and export has anything for this person (tools.js). */
  get hasTools () {
    const guests = this.access.docs.guests
    return (guests && guests !== 'none') ||
      ['calendar.tokens', 'members.invite', 'members.manage', 'webhooks.manage', 'weddings.export'].some((c) => Array.isArray(this.access.capabilities) && this.access.capabilities.includes(c))
  }

  canWrite (kind) {
    return this.access.docs[kind] === 'write'
  }

  /** Whether `kind` is changed through operations over HTTP (`operate` in /access). */
  canOperate (kind) {
    return this.access.docs[kind] === 'operate'
  }

  /** Change a guest's answers (rsvp, meal, dietary, plus_one): an edit of the replica for
   *  a writer, a queued `update_guest` (`set_rsvp` for the RSVP alone) for an operator. */
  answer (guestId, fields, form = null) {
    if (!this.canOperate('guests')) {
      updateGuest(this.docs.guests, guestId, fields)
      return
    }
    const only = Object.keys(fields)
    const op = only.length === 1 && only[0] === 'rsvp'
      ? { op: 'set_rsvp', guest_id: guestId, rsvp: fields.rsvp }
      : { op: 'update_guest', guest_id: guestId, ...fields }
    this.ops.add('guests', op, form)
  }

  unseat (guestId) {
    if (this.canOperate('seating')) this.ops.add('seating', { op: 'unassign_seat', guest_id: guestId })
    else unseatGuest(this.docs.seating, guestId)
  }

  say (text) {
    this.announcement = text
    this.render()
  }

  closed (room, event) {
    if (event.code === 4401) {
      // Expired or revoked: ask for a fresh token once (all rooms close together). A revoked
      // session is refused (401) and signs out; a success reconnects every room; a refusal
      // saying the person lost the wedding (not a member, session ended) clears it from
      // this device (loseAccess).
      if (this.signedOut || this.lostAccess) return
      if (this.device) {
        this.reconnectOnToken = true
        this.keeper.refresh()
      } else if (!this.keeper.valid()) this.signOut('your session expired')
      else this.keeper.refresh()
    } else if (event.code === 4404) {
      this.gone()
    }
  }

  /** The wedding was deleted: forget everything this device keeps of it. */
  /** The server's answer to what this person may open, after the app opened from the
   *  access kept on this device: the same rooms, and only names or capabilities may differ
   *  (shown at once); other rooms, levels, projections or a transport (a role changed
   *  meanwhile) reopen the app with the new answer, kept by now; refused, signed out; a
   *  deleted wedding, removed. No answer (offline): the kept access stands. */
  /** A push notification opened the app (the service worker's notificationclick) at
   *  `?thread=` or `?inbox=1`: that thread, or the inbox for an emergency. */
  openFromPush () {
    const params = new URLSearchParams(location.search)
    if (!params.has('thread') && !params.has('inbox')) return
    history.replaceState(null, '', location.pathname + location.hash)
    const wedding = params.get('wedding')
    if (wedding && wedding !== this.wedding) return
    const thread = params.get('thread')
    if (thread) this.openNotification({ thread: { id: thread } })
    else this.showInbox(true)
  }

  accessAnswered (fresh) {
    if (!fresh) return
    if (fresh.deleted) { this.gone(); return }
    if (fresh.refused) { this.signOut(fresh.refused); return }
    const rooms = (a) => JSON.stringify([a.role, a.docs, a.projected || [], a.transport || 'collab'])
    if (rooms(fresh) !== rooms(this.access)) { location.reload(); return }
    this.access = fresh
    this.push.keyIs(fresh.push_key)
    if (this.device) {
      try { localStorage.setItem(`crdt-server.access:${this.wedding}`, JSON.stringify(fresh)) } catch {}
    }
    this.sync.changed()
  }

  gone () {
    if (this.deleted) return
    this.deleted = true
    this.keeper.stop()
    this.ops.stop()
    this.ops.clear()
    this.feed.clear()
    this.threads.clear()
    this.discussing = null
    this.sync.clearLocal().then(() => forgetWedding(this.wedding))
    this.render()
  }

  signOut (reason) {
    this.signedOut = reason
    this.keeper.stop()
    this.ops.stop()
    this.feed.stop()
    this.threads.stop()
    this.sync.disconnect()
    if (!this.device) forgetToken()
    this.render()
  }

  /** The activity feed, one tap away on a narrow screen (where it sits below the view). */
  toActivity () {
    const feed = document.querySelector('.activity')
    if (!feed) return
    feed.scrollIntoView({ block: 'start' })
    document.getElementById('activity-title')?.focus({ preventScroll: true })
  }

  /** A removal, done at once: its toast offers Undo instead of asking first. */
  removed (text, change) {
    const top = () => this.history.undos[this.history.undos.length - 1]
    const before = top()
    this.history.act(text, change)
    const toast = { text, action: top() !== before ? top() : null }
    this.toast = toast
    this.say(`${text}.`)
    setTimeout(() => { if (this.toast === toast) { this.toast = null; this.render() } }, 10_000)
  }

  undo () {
    const what = this.history.nextUndo
    this.toast = null
    if (this.history.undo()) this.say(`Undone: ${what}.`)
  }

  redo () {
    if (this.history.redo()) this.say('Redone.')
  }

  /** Ctrl+Z / Ctrl+Shift+Z / Ctrl+Y (⌘ on a Mac) outside text fields, which keep their own. */
  shortcut (e) {
    if (!(e.ctrlKey || e.metaKey) || e.altKey) return
    const key = e.key.toLowerCase()
    if (key !== 'z' && key !== 'y') return
    const target = e.target
    if (target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName))) return
    e.preventDefault()
    if (key === 'y' || e.shiftKey) this.redo()
    else this.undo()
  }

  /** Open or close the devices panel (a device session's). */
  showDevices (open = true) {
    this.devices = open ? new Devices({ onChange: () => this.render() }) : null
    if (open) this.devices.load()
    this.render()
  }

  /** Changes made here the server has not confirmed yet: document edits, queued
   *  operations, thread messages and check-ins. */
  get unsent () {
    return this.sync.pendingCount + this.ops.count + this.threads.outbox.length + this.day.queue.entries.length
  }

  /** Sign this device out (`all`: every device). With changes not yet sent, it asks first
   *  (they would go with the device's copy): wait for them, or sign out now. */
  async signOutHere (all = false, force = false) {
    const count = this.unsent
    if (count && !force) {
      this.leaving = { all, count, waiting: false }
      this.render()
      requestAnimationFrame(() => document.getElementById('leaving')?.focus())
      return
    }
    this.leaving = null
    await post(all ? '/api/session/sign-out-all' : '/api/session/sign-out', {}).catch(() => null)
    this.loseAccess(all ? 'You signed out on every device.' : 'You signed out on this device.')
  }

  signOutEverywhere () {
    return this.signOutHere(true)
  }

  /** The question before signing out with changes not yet sent (signOutHere). */
  leavingView () {
    const leaving = this.leaving
    if (!leaving) return nothing
    const n = leaving.count
    const changes = `${n} ${n === 1 ? 'change' : 'changes'}`
    return html`<div id="leaving" class="banner warn" role="alertdialog" aria-labelledby="leaving-text" tabindex="-1">
      <p id="leaving-text">${leaving.waiting
        ? `Waiting for ${changes} to reach the server; you will be signed out then.`
        : `${changes} made on this device ${n === 1 ? 'has' : 'have'} not reached the server yet. Signing out now removes ${n === 1 ? 'it' : 'them'} with this device's copy of the wedding.`}</p>
      ${leaving.waiting ? nothing : html`<button type="button" @click=${() => this.waitThenSignOut()}>Wait, then sign out</button>`}
      <button type="button" class="danger" @click=${() => this.signOutHere(leaving.all, true)}>Sign out now</button>
      <button type="button" @click=${() => { this.leaving = null; this.render() }}>Stay signed in</button>
    </div>`
  }

  /** Wait until every change made here is confirmed, then sign out as asked. */
  waitThenSignOut () {
    const leaving = this.leaving
    if (!leaving) return
    leaving.waiting = true
    this.ops.kick()
    this.day.queue.kick()
    const check = () => {
      if (this.leaving !== leaving) return // cancelled
      if (this.unsent === 0) { this.signOutHere(leaving.all, true); return }
      leaving.count = this.unsent
      this.render()
      setTimeout(check, 300)
    }
    check()
  }

  /** This person lost the wedding for good (removed from it, or their session ended, here
   *  or elsewhere): the screen is cleared at once, everything stops, and what this device
   *  keeps of the wedding for them goes (its local databases and storage), and, when the
   *  session itself ended, of the other weddings it listed. */
  loseAccess (reason) {
    if (this.lostAccess) return
    this.lostAccess = reason
    this.leaving = null
    this.discussing = null
    this.keeper.stop()
    this.ops.stop()
    this.ops.clear()
    this.feed.clear()
    this.threads.clear()
    this.day.queue.clear?.()
    if (!this.device) forgetToken()
    this.render()
    const others = reason.includes('no longer a member') ? [] : this.weddings.map((w) => w.wedding).filter((w) => w !== this.wedding)
    this.forgotten = this.sync.clearLocal()
      .then(() => forgetPerson(this.wedding, this.access.sub))
      .then(() => Promise.all(others.map((w) => forgetPerson(w, keptSub(w)))))
      .then(() => { document.body.dataset.forgotten = 'true' })
  }

  /** Open another of this person's weddings (the switcher). */
  switchTo (wedding) {
    if (wedding === this.wedding) return
    rememberWedding(wedding)
    location.assign('/app/')
  }

  statusText () {
    if (this.signedOut) return `Signed out: ${this.signedOut}`
    if (this.deleted) return 'Wedding deleted'
    const status = this.sync.status
    const pending = this.sync.pendingCount + this.ops.count
    // Queued operations are changes not yet confirmed, like edits the socket has not echoed.
    const shown = status === 'synced' && this.ops.count ? 'syncing' : status
    const word = { offline: 'Offline', connecting: 'Connecting…', syncing: 'Syncing…', synced: 'Synced' }[shown]
    if (pending && status !== 'synced') return `${word} · ${pending} ${pending === 1 ? 'change' : 'changes'} not yet confirmed`
    return word
  }

  /** Seat a household's people who may come (their unnamed plus-ones with them) at one
   *  table, in one action: one operation for an operator, one transaction otherwise. */
  seatHousehold (householdId, tableId) {
    const household = this.households.get(householdId)
    const table = this.seating.tables.find((t) => t.id === tableId)
    if (!household || !table) return
    const { moving, people } = householdMove(household, this.seating, this.guests, tableId)
    if (!moving.length) { this.say(`${household.name} already sit at ${table.name}.`); return }
    const free = table.capacity - (peopleAt(this.seating, this.guests).get(tableId) || 0)
    if (people > free) {
      this.refuse('seat-household', [{ field: 'table', message: `${table.name} has ${Math.max(free, 0)} free seats; ${household.name} need ${people}.` }])
      return
    }
    this.errors.clear('seat-household')
    if (this.canOperate('seating')) this.ops.add('seating', { op: 'seat_household', household_id: householdId, table_id: tableId })
    else this.history.act(`${household.name} seated at ${table.name}`, () => seatHousehold(this.docs.seating, moving, tableId))
    this.say(`${household.name} seated together at ${table.name}.`)
  }

  /** Seat a guest on one seat of a table (the chart's drop on a seat). */
  seatAt (guestId, tableId, seat) {
    const guest = this.guests.find((g) => g.id === guestId)
    const table = this.seating.tables.find((t) => t.id === tableId)
    if (!guest || !table) return
    if (this.canOperate('seating')) this.ops.add('seating', { op: 'assign_seat', guest_id: guestId, table_id: tableId, seat })
    else seatGuestAt(this.docs.seating, guestId, tableId, seat)
    this.say(`${guest.name} seated at ${table.name}, seat ${seat}.`)
  }

  seat (guestId, tableId) {
    if (this.canOperate('seating')) {
      const value = seatFor(this.seating, guestId, tableId)
      if (value) this.ops.add('seating', { op: 'assign_seat', guest_id: guestId, ...value })
    } else {
      seatGuest(this.docs.seating, guestId, tableId)
    }
    const guest = this.guests.find((g) => g.id === guestId)
    const table = this.seating.tables.find((t) => t.id === tableId)
    if (guest && table) this.say(`${guest.name} seated at ${table.name}.`)
  }

  refresh () {
    this.render()
  }

  /** Everything the views read, from the documents as they are now. */
  snapshot () {
    const rooms = this.sync.rooms
    this.docs = Object.fromEntries(Object.entries(rooms).map(([kind, room]) => [kind, room.doc]))
    // With the operations still queued on this device shown as done (an operator's changes).
    this.guests = this.ops.overlayGuests(readGuests(this.docs.guests))
    this.seating = this.ops.overlaySeating(readSeating(this.docs.seating))
    this.households = householdsOf(this.guests, readHouseholds(this.docs.guests))
    this.menu = readMenu(this.docs.guests)
    this.timeline = readTimeline(this.docs.timeline)
    this.profile = readProfile(this.docs.timeline)
    this.budget = readBudget(this.docs.budget)
    // Dates, times and money as the wedding has them, whatever this device's zone (local.js).
    this.local = useFormats(this.profile.time_zone, this.budget.currency)
    this.overlaps = timelineOverlaps(this.timeline)
    this.others = this.sync.others()
    this.threadIndex = threadIndex(this.threads.threads)
    let learned = false
    for (const p of [{ id: this.access.sub, name: this.access.name }, ...this.others]) {
      if (p.id && p.name && this.people[p.id] !== p.name) {
        this.people[p.id] = p.name
        learned = true
      }
    }
    if (learned && !this.deleted) savePeople(this.wedding, this.people)
    const found = new Map()
    if (this.sync.conflicts) {
      this.sync.conflicts.doc.getMap('conflicts').forEach((c) => {
        if (c && typeof c.message === 'string' && Array.isArray(c.paths)) found.set(conflictKey(c), c)
      })
    }
    // Seating conflicts are also found here, so they show at once (and for roles that
    // may not open the server's conflicts room).
    if (rooms.seating) {
      for (const c of seatingConflicts(this.seating, this.guests)) found.set(conflictKey(c), c)
      for (const c of householdSplits(this.households, this.seating)) found.set(conflictKey(c), c)
    }
    // The server's list may name documents this person may not read; show only theirs.
    this.conflicts = [...found.values()].filter((c) => c.paths.every((p) => this.sections.includes(p.split('/')[0])))
  }

  /** One finding of the conflicts banner, with the server's suggestion and, for a role with
   *  `conflicts.resolve`, its controls: apply the suggestion, or acknowledge (keep as is). */
  conflictItem (c) {
    const finding = this.lost.all.find((f) => f.id && conflictKey(f) === conflictKey(c))
    const suggestion = finding && finding.suggestion
    const form = finding ? `conflict-${finding.id}` : null
    const f = form ? this.errors.of(form) : null
    // Each button is its own field: a refusal is said beside (and focuses) the one pressed.
    const settle = async (field, how, done) => {
      this.errors.clear(form)
      const refused = await this.lost.settle(finding, how)
      if (refused) this.refuse(form, [{ field, message: `Not done: ${refused}.` }])
      else this.say(done)
    }
    const busy = finding && this.lost.busy.has(finding.id)
    return html`<li data-code=${c.code} data-form=${form || nothing}>
      ${c.code === 'concurrent_edit' ? this.crossed(c) : this.local.words(c.message)}
      ${suggestion && suggestion.message ? html`<span class="suggestion">Suggested: ${this.local.words(suggestion.message)}</span>` : nothing}
      ${finding && this.can('conflicts.resolve')
        ? html`<span class="conflict-actions">
            ${suggestion && Array.isArray(suggestion.ops) && suggestion.ops.length
              ? html`<button type="button" name="apply" ?disabled=${busy} aria-describedby=${f.describedBy('apply')}
                  @click=${() => settle('apply', { ops: suggestion.ops }, 'The suggestion was applied.')}>Apply the suggestion</button>`
              : nothing}
            <button type="button" name="acknowledge" ?disabled=${busy} aria-describedby=${f.describedBy('acknowledge')}
              @click=${() => settle('acknowledge', { acknowledge: true }, 'Conflict acknowledged: things stay as they are.')}>Acknowledge</button>
          </span>${f.note('apply')}${f.note('acknowledge')}`
        : nothing}
    </li>`
  }

  /** A lost write in the conflicts list: what was written twice, in the app's words. */
  crossed (c) {
    const [doc, ...path] = String(c.paths[0] || '').split('/')
    const what = this.entryName(doc, [...path, ...(c.field ? c.field.split('/') : [])])
    return c.kind === 'edited_removed_entry'
      ? `An edit of ${what} was lost: it was removed at the same time.`
      : `Two people changed ${what} at the same time; one change was kept.`
  }

  /** What a notice calls a key: the guest's name and the field, where the app knows them. */
  entryName (doc, path) {
    const [root, key, ...fields] = path
    const field = fields.join(' ')
    if (doc === 'guests' && root === 'guests') {
      const guest = this.guests.find((g) => g.id === key)
      // A race for the name: the name shown now is one of the two values.
      if (!guest || field === 'name') return `a guest’s ${field || 'entry'}`
      return `${guest.name}’s ${field || 'entry'}`
    }
    if (doc === 'seating' && root === 'assignments') {
      const guest = this.guests.find((g) => g.id === key)
      return `${guest ? guest.name : 'a guest'}’s seat`
    }
    return `${TITLES[doc] || doc} ${[root, key, ...fields].join(' / ')}`
  }

  /** What the activity feed may call things by, from the documents as they are now. */
  names () {
    const byId = (list, key) => (id) => {
      const found = list && list.find((x) => x.id === id)
      return found ? found[key] : null
    }
    return {
      person: (sub) => (sub === this.access.sub ? 'You' : this.people[sub] || this.threads.members.get(sub) || null),
      thread: (tid) => {
        const found = this.threads.threads.find((t) => t.id === tid)
        return found ? found.subject : null
      },
      guest: byId(this.guests, 'name'),
      table: (id) => {
        const name = byId(this.seating.tables, 'name')(id)
        return name ? `table ${name}` : null
      },
      item: byId(this.timeline, 'title'),
      category: byId(this.budget.categories, 'name'),
      task: byId(readTasks(this.docs.tasks), 'title'),
      money: (n) => (Number.isInteger(n) ? this.local.money(n) : null)
    }
  }

  /** Go to a change the feed names: its section, the entry scrolled into view and flashed. */
  reveal ({ section, entity }) {
    if (section === 'guests') Object.assign(this.filters, { query: '', rsvp: '', side: '', household: '', dietary: '' })
    if (this.section !== section) location.hash = `#${section}`
    const show = () => {
      const found = entity && document.querySelector(`main [data-entity="${CSS.escape(entity)}"]`)
      if (!found) return
      found.scrollIntoView({ block: 'center' })
      found.classList.remove('flash')
      void found.offsetWidth // restart the animation
      found.classList.add('flash')
      setTimeout(() => found.classList.remove('flash'), 2500)
    }
    // After the section's view has rendered (the hash change renders on the next frame).
    setTimeout(() => requestAnimationFrame(show), 50)
  }

  activityView () {
    const names = this.names()
    const groups = this.feed.recent()
    const state = { live: 'Live', connecting: 'Connecting…', offline: 'Offline', stopped: '' }[this.feed.state]
    return html`<aside class="activity" aria-labelledby="activity-title">
      <div class="activity-head">
        <h2 id="activity-title" tabindex="-1">Activity</h2>
        <span class="muted feed-state ${this.feed.state}">${state}</span>
      </div>
      ${groups.length
        ? html`<ol class="feed" aria-label="Recent activity">
            ${groups.map((group) => {
              const said = describe(group, names)
              const place = placeOf(group)
              const reachable = place && this.sections.includes(place.section)
              return html`<li class="feed-item kind-${said.kind}" data-seq=${String(group.events[group.events.length - 1].seq)}>
                <p>${said.who ? html`<strong>${said.who}</strong> ` : nothing}${said.what}</p>
                ${said.details
                  ? html`<details class="feed-more"><summary>${said.details.length} edits</summary>
                      <ul>${said.details.map((line) => html`<li>${line}</li>`)}</ul></details>`
                  : nothing}
                <div class="feed-meta">
                  <time class="muted" datetime=${group.at} title=${this.local.dateTime(group.at)}>${when(group.at)}</time>
                  ${reachable ? html`<a class="feed-link" href=${`#${place.section}`} aria-label="Show this change" @click=${(e) => { e.preventDefault(); this.reveal(place) }}>Show</a>` : nothing}
                </div>
              </li>`
            })}
          </ol>`
        : html`<p class="muted">Nothing yet. Changes by anyone in this wedding show here as they happen.</p>`}
    </aside>`
  }

  /** The one conflicts panel: the person's own lost writes (lost.js) first, then every other
   *  finding (a lost write is shown once, as its notice); one line on a phone. */
  conflictsPanel () {
    const lost = this.lost.items
    const mine = new Set(lost.map((item) => conflictKey(item)))
    const others = this.conflicts.filter((c) => !mine.has(conflictKey(c)))
    const count = others.length + lost.length
    if (!count) return nothing
    const names = {
      person: this.names().person,
      entry: (doc, path) => this.entryName(doc, path),
      docs: () => this.docs,
      words: (text) => this.local.words(text)
    }
    const summary = [
      others.length ? `${others.length} ${others.length === 1 ? 'conflict' : 'conflicts'} to resolve` : null,
      lost.length ? `${lost.length} ${lost.length === 1 ? 'change' : 'changes'} of yours lost` : null
    ].filter(Boolean).join(' · ')
    return html`<section class="banner conflicts" role="region" aria-label="Conflicts">
      <details ?open=${this.conflictsOpen ?? matchMedia(WIDE).matches}>
        <summary @click=${(e) => { this.conflictsOpen = !e.currentTarget.parentElement.open }}><strong>${summary}</strong></summary>
        ${lostList(this.lost, names)}
        ${others.length ? html`<ul aria-label="Findings">${others.map((c) => this.conflictItem(c))}</ul>` : nothing}
      </details>
    </section>`
  }

  render () {
    if (this.lostAccess) {
      // Nothing of the wedding stays on screen.
      render(html`<main class="signed-out" id="main" role="main" tabindex="-1"><h1>Wedding closed on this device</h1>
        <p role="alert">${this.lostAccess} Its copy on this device has been removed.</p>
        <p><a href="/app/">Open the app again</a></p></main>`, this.host)
      return
    }
    if (!this.sync || !this.host) return
    if (this.sync.status === 'synced') settled()
    // The server answers again (a socket reconnected): send what was queued meanwhile.
    if (this.ops.count && this.sync.status === 'synced') this.ops.kick()
    if (this.day && this.day.queue.count && this.sync.status === 'synced') this.day.queue.kick()
    this.snapshot()
    if (location.hash.startsWith('#/print')) {
      // A print view: the page alone (shareable by its address), nothing of the app around it.
      render(html`<main id="main" class="print-page" tabindex="-1">${printPage(this)}</main>
        <p class="sr-only" aria-live="polite">${this.announcement}</p>`, this.host)
      return
    }
    const section = this.section
    const status = this.signedOut ? 'signed-out' : this.deleted ? 'deleted' : this.sync.status
    const views = { guests: guestsView, seating: seatingView, timeline: timelineView, budget: budgetView, tasks: tasksView, [RSVP_SECTION]: rsvpLinksView, overview: overviewSection }
    const here = (kind) => this.others.filter((p) => p.here.section === kind)
    render(html`
      <a class="skip" href="#main" @click=${(e) => { e.preventDefault(); document.getElementById('main').focus() }}>Skip to content</a>
      <header class="top">
        <div class="brand">
          <h1>Wedding planner</h1>
          <span class="muted"><span class="couple">${coupleNames(this.profile)}</span> · ${this.access.name} (${this.access.role})</span>
          ${this.weddings.length > 1
            ? html`<label class="switcher">Wedding <select @change=${(e) => this.switchTo(e.target.value)}>
                ${this.weddings.map((w) => html`<option value=${w.wedding} ?selected=${w.wedding === this.wedding}>${w.names || w.wedding} (${w.role})</option>`)}
              </select></label>`
            : nothing}
          ${this.device ? html`<button type="button" class="link" aria-expanded=${this.devices ? 'true' : 'false'} @click=${() => this.showDevices(!this.devices)}>Devices</button>` : nothing}
        </div>
        ${bell(this)}
        ${this.can('events.emergency')
          ? html`<button type="button" class="emergency-action danger" aria-expanded=${this.emergencyOpen ? 'true' : 'false'} @click=${() => this.showEmergency(!this.emergencyOpen)}>Emergency</button>`
          : nothing}
        ${this.hasTools
          ? html`<button type="button" class="share" aria-expanded=${this.toolsOpen ? 'true' : 'false'} @click=${() => this.showTools(!this.toolsOpen)}>Share</button>`
          : nothing}
        <div class="presence" aria-label="Who else is here">
          ${this.others.map((p) => avatar(p, `${p.name} (${p.role}) is in ${TITLES[p.here.section] || 'the app'}`))}
        </div>
        ${this.writesSomething ? html`<div class="history" role="group" aria-label="Undo and redo your changes">
          <button type="button" ?disabled=${!this.history.canUndo} title="Undo (Ctrl+Z)"
            aria-label=${this.history.canUndo ? `Undo: ${this.history.nextUndo}` : 'Undo'} @click=${() => this.undo()}>Undo</button>
          <button type="button" ?disabled=${!this.history.canRedo} title="Redo (Ctrl+Shift+Z)" @click=${() => this.redo()}>Redo</button>
        </div>` : nothing}
        <div class="status ${status}" role="status" aria-live="polite"
          data-pending=${String(this.sync.pendingCount)} data-stored=${String(this.sync.storedLocally)}>
          <span class="dot" aria-hidden="true"></span>${this.statusText()}
        </div>
      </header>
      <nav class="tabs" aria-label="Sections">
        <ul>
          ${this.sections.map((kind) => html`<li data-section=${kind}>
            <a href=${`#${kind}`} aria-current=${kind === section ? 'page' : 'false'}>${TITLES[kind]}</a>
            ${here(kind).length ? html`<span class="here">${here(kind).map((p) => avatar(p, `${p.name} is in ${TITLES[kind]}`))}</span>` : nothing}
          </li>`)}
          <li class="to-activity"><button type="button" class="link" @click=${() => this.toActivity()}>Activity</button></li>
        </ul>
      </nav>
      ${this.signedOut ? html`<div class="banner danger" role="alert">You are signed out (${this.signedOut}). Open a new sign-in link to continue; nothing you changed on this device is lost.</div>` : nothing}
      ${this.deleted ? html`<div class="banner danger" role="alert">This wedding was deleted. Its copy on this device has been removed.</div>` : nothing}
      ${this.leavingView()}
      ${confirmEmailView(this)}
      ${this.conflictsPanel()}
      <div class="layout">
        <main id="main" tabindex="-1">${section === 'timeline' ? html`${dayModeSwitch(this)}${dayPanel(this)}` : nothing}${views[section](this)}</main>
        <div class="side">
          ${historyView(this)}
          ${this.toolsOpen ? toolsView(this) : nothing}
          ${this.emergencyOpen ? emergencyView(this) : nothing}
          ${this.inboxOpen ? inboxView(this) : nothing}
          ${this.devices ? devicesView(this) : nothing}
          ${this.discussing ? threadPanel(this) : nothing}
          ${this.activityView()}
        </div>
      </div>
      ${this.toast && this.toast.action && this.toast.action === this.history.undos[this.history.undos.length - 1]
        ? html`<div class="toast" aria-live="polite"><span>${this.toast.text}.</span>
            <button type="button" @click=${() => this.undo()}>Undo</button></div>`
        : nothing}
      <p class="sr-only" aria-live="polite">${this.announcement}</p>
    `, this.host)
    this.errors.settle(this.host)
    if (this.listCheck) this.listCheck() // a long guest list may need other rows now
    this.tabsCue(section)
  }

  /** The tab row scrolls sideways where it does not fit (a phone): its `data-more` says on
   *  which side more tabs are (a fade and an arrow there), and the current tab is brought
   *  into the row's view when the section changes. */
  tabsCue (section) {
    const nav = this.host.querySelector('nav.tabs')
    const row = nav && nav.querySelector('ul')
    if (!row) return
    if (!row.dataset.cued) {
      row.dataset.cued = 'true'
      const again = () => this.tabsCue()
      row.addEventListener('scroll', again, { passive: true })
      window.addEventListener('resize', again)
    }
    const current = row.querySelector('a[aria-current="page"]')
    if (section && section !== this.cuedSection && current) {
      this.cuedSection = section
      const box = current.closest('li')
      const start = box.offsetLeft - row.offsetLeft
      const end = start + box.offsetWidth
      if (start < row.scrollLeft) row.scrollLeft = Math.max(0, start - 24)
      else if (end > row.scrollLeft + row.clientWidth) row.scrollLeft = end - row.clientWidth + 24
    }
    const left = row.scrollLeft > 1
    const right = row.scrollLeft + row.clientWidth < row.scrollWidth - 1
    const more = left && right ? 'both' : left ? 'left' : right ? 'right' : null
    if (more === null) delete nav.dataset.more
    else if (nav.dataset.more !== more) nav.dataset.more = more
  }
}

start()
