// The RSVP page (/rsvp/#code=...): a household answers for its people, on a phone, with no
// account. Every string a guest or the couple typed is put in the page as text (never as
// HTML); the page loads nothing from elsewhere and keeps only `rsvp:` keys in storage.
import { keep, lastPage, pending, rememberPage, send } from './queue.js'
import { spoken } from './words.js'

const root = document.getElementById('rsvp')
const MAX_NOTE = 1000 // the server's MAX_NOTE: characters of the household's note
const code = new URLSearchParams(location.hash.slice(1)).get('code') || ''

function el (tag, attrs = {}, ...children) {
  const node = document.createElement(tag)
  for (const [name, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue
    if (name === 'text') node.textContent = value
    else node.setAttribute(name, value === true ? '' : String(value))
  }
  for (const child of children) if (child) node.append(child)
  return node
}

function show (...nodes) {
  root.replaceChildren(...nodes.filter(Boolean))
}

function notice (text, warn = false) {
  return el('p', { class: warn ? 'notice warn' : 'notice', role: 'status', text })
}

function heading (page) {
  const names = (page.wedding.names || []).join(' & ') || 'The couple'
  const zone = page.wedding.time_zone
  return [
    el('p', { class: 'muted', text: `${names} invite you` }),
    el('h1', { text: page.household }),
    page.wedding.date ? el('p', { class: 'when', text: `On ${spoken(page.wedding.date, zone)}` }) : null,
    page.wedding.venue ? el('p', { class: 'where', text: `At ${page.wedding.venue}` }) : null,
    page.deadline ? el('p', { class: 'deadline', text: `Please answer by ${spoken(page.deadline, zone)}.` }) : null
  ]
}

function mealField (name, menu, value, label) {
  let meal
  if (menu) {
    meal = el('select', { name }, el('option', { value: '', text: 'Choose…' }))
    for (const dish of menu) meal.append(el('option', { value: dish, text: dish, selected: value === dish }))
  } else {
    meal = el('input', { name, maxlength: 200, autocomplete: 'off' })
    meal.value = value || ''
  }
  return el('label', { class: 'field' }, document.createTextNode(label), meal)
}

function personCard (person, menu, index) {
  const id = `p${index}`
  const going = person.rsvp === 'accepted'
  const declined = person.rsvp === 'declined'
  const choices = el('div', { class: 'choices', role: 'radiogroup', 'aria-label': `Will ${person.name} attend?` },
    el('label', {}, el('input', { type: 'radio', name: `${id}-attending`, value: 'yes', checked: going }), document.createTextNode('Attending')),
    el('label', {}, el('input', { type: 'radio', name: `${id}-attending`, value: 'no', checked: declined }), document.createTextNode('Not attending')))
  const dietary = el('input', { name: `${id}-dietary`, maxlength: 200, autocomplete: 'off', placeholder: 'e.g. vegetarian, no nuts' })
  dietary.value = (person.dietary || []).join(', ')
  const card = el('section', { class: 'person', 'aria-label': person.name, 'data-guest': person.guest_id },
    el('h2', { text: person.name }),
    choices,
    mealField(`${id}-meal`, menu, person.meal, 'Meal'),
    el('label', { class: 'field' }, document.createTextNode('Dietary needs'), dietary))
  return card
}

function answerOf (form, page) {
  const people = []
  page.people.forEach((person, index) => {
    const id = `p${index}`
    const choice = form.querySelector(`input[name="${id}-attending"]:checked`)
    if (!choice) return
    const answer = { guest_id: person.guest_id, attending: choice.value === 'yes' }
    const meal = form.elements[`${id}-meal`].value.trim()
    if (meal) answer.meal = meal
    const dietary = form.elements[`${id}-dietary`].value.split(',').map((s) => s.trim()).filter(Boolean).slice(0, 20)
    answer.dietary = dietary
    people.push(answer)
  })
  const body = { people }
  const plusOne = form.elements['plus-one'] && form.elements['plus-one'].value.trim()
  if (plusOne) {
    body.plus_one = { name: plusOne.slice(0, 200) }
    const meal = form.elements['plus-one-meal'].value.trim()
    if (meal) body.plus_one.meal = meal.slice(0, 200)
  }
  // Always sent: an emptied note clears the one sent before (a guest's own link keeps none).
  if (form.elements.note) body.note = form.elements.note.value.trim().slice(0, MAX_NOTE)
  return body
}

function render (page, message) {
  if (page.closed) {
    show(...heading(page), notice('The RSVP is closed. Please contact the couple directly.', true))
    return
  }
  const form = el('form', { 'aria-label': 'Your answer' })
  page.people.forEach((person, index) => form.append(personCard(person, page.menu, index)))
  const hosts = page.people.filter((p) => p.plus_one && !p.plus_one_of)
  const named = page.people.some((p) => p.plus_one_of)
  if (hosts.length && !named) {
    // Their guest: a name, and a meal like everyone else's.
    form.append(el('section', { class: 'person plus-one', 'aria-label': `${hosts[0].name}'s guest` },
      el('h2', { text: `${hosts[0].name}'s guest` }),
      el('label', { class: 'field' }, document.createTextNode(`Name of ${hosts[0].name}'s guest (optional)`),
        el('input', { name: 'plus-one', maxlength: 200, autocomplete: 'off' })),
      mealField('plus-one-meal', page.menu, null, `Meal of ${hosts[0].name}'s guest`)))
  }
  if (page.kind !== 'guest') {
    // The note as last kept on this phone (an answer waiting to be sent), else as sent.
    const waiting = pending(localStorage, code)
    const note = el('textarea', { name: 'note', rows: 4, maxlength: MAX_NOTE, placeholder: 'e.g. we arrive Saturday only' })
    note.value = (waiting && waiting.body && typeof waiting.body.note === 'string' ? waiting.body.note : page.note) || ''
    form.append(el('label', { class: 'field' }, document.createTextNode('A note for the couple (optional)'), note))
  }
  form.append(el('button', { type: 'submit', text: 'Send my answer' }))
  form.addEventListener('submit', (event) => {
    event.preventDefault()
    const body = answerOf(form, page)
    if (!body.people.length) {
      show(...heading(page), notice('Choose attending or not for at least one person.', true), form)
      return
    }
    deliver(keep(localStorage, code, body), page)
  })
  show(...heading(page), message || null, form)
}

async function deliver (entry, page) {
  const result = await send(localStorage, entry)
  if (result.state === 'sent') {
    const fresh = await load(false)
    render(fresh || page, notice('Thank you! Your answer was sent to the couple.'))
  } else if (result.state === 'offline') {
    render(page, notice('You are offline: your answer is kept on this phone and will be sent when you are back online.', true))
  } else if (result.status === 410) {
    render({ ...page, closed: true })
  } else {
    const detail = (result.problem && result.problem.detail) || 'the answer was refused'
    render(page, notice(`Your answer could not be sent: ${detail}`, true))
  }
}

async function load (fallback = true) {
  try {
    const response = await fetch(`/api/rsvp/${encodeURIComponent(code)}`, { headers: { Accept: 'application/json' } })
    if (response.status === 404) {
      show(el('h1', { text: 'This link does not work' }), notice('It may have been replaced by a newer one. Please ask the couple for your link.', true))
      return null
    }
    if (response.status === 429) {
      show(notice('Too many tries from here: please wait a few minutes and reload.', true))
      return null
    }
    const page = await response.json()
    rememberPage(localStorage, code, page)
    return page
  } catch {
    return fallback ? lastPage(localStorage, code) : null
  }
}

async function start () {
  // Another link opened in this tab (only the fragment changes): that link's page.
  window.addEventListener('hashchange', () => location.reload())
  if ('serviceWorker' in navigator) navigator.serviceWorker.register('/rsvp/sw.js', { scope: '/rsvp/' }).catch(() => {})
  if (!/^[A-Za-z0-9_.-]{1,160}$/.test(code)) {
    show(el('h1', { text: 'This link is incomplete' }), notice('Open the whole link from your invitation.', true))
    return
  }
  const page = await load()
  if (!page) {
    if (root.textContent.includes('Loading')) show(notice('You are offline. Open this page again when you are back online.', true))
    return
  }
  const waiting = pending(localStorage, code)
  if (waiting) {
    render(page, notice('Sending the answer you gave earlier…'))
    await deliver(waiting, page)
  } else {
    render(page)
  }
  window.addEventListener('online', () => {
    const again = pending(localStorage, code)
    if (again) deliver(again, page)
  })
}

start()
