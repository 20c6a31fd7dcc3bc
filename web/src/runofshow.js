// The run of show: the timeline's rich text (Y.XmlFragment "runofshow"), edited with Tiptap
// over the same Yjs document and awareness as the rest of the app. This module is its own
// lazy chunk: main.js imports it only when someone opens the run of show.
//
// The app's Content-Security-Policy allows no inline styles, so nothing here writes a style
// attribute: Tiptap's own style sheet is not injected (its rules are in styles.css) and the
// other people's carets and selections are coloured by class, not by inline colour.

import { Editor, Extension } from '@tiptap/core'
import { Fragment, Slice } from '@tiptap/pm/model'
import StarterKit from '@tiptap/starter-kit'
import Collaboration from '@tiptap/extension-collaboration'
import { yCursorPlugin } from '@tiptap/y-tiptap'

export const FRAGMENT = 'runofshow'
const COLOURS = 6
const SAFE_LINK = /^(https?:\/\/|mailto:)/i

/** Links are kept only for http, https and mailto (no javascript:, data:, file:...). */
export const allowedLink = (url) => typeof url === 'string' && SAFE_LINK.test(url.trim())

const colour = (clientId) => `ros-colour-${clientId % COLOURS}`

function caret (user, clientId) {
  const mark = document.createElement('span')
  mark.className = `ros-caret ${colour(clientId)}`
  mark.setAttribute('data-client', String(clientId))
  const name = document.createElement('span')
  name.className = 'ros-caret-name'
  name.textContent = (user && user.name) || 'Someone'
  mark.append(name)
  return mark
}

const selection = (_user, clientId) => ({ class: `ros-selection ${colour(clientId)}` })

/** The marks a paste keeps: what the toolbar offers. Others (underline, strike, code...) are
 *  dropped from pasted text, which stays; marks other clients wrote are left alone. */
const PASTED_MARKS = new Set(['bold', 'italic', 'link'])

function keepAllowedMarks (fragment) {
  const nodes = []
  fragment.forEach((node) => {
    if (node.isText) nodes.push(node.mark(node.marks.filter((m) => PASTED_MARKS.has(m.type.name))))
    else nodes.push(node.copy(keepAllowedMarks(node.content)))
  })
  return Fragment.fromArray(nodes)
}

const REFUSED_LINK = 'Only http, https and mailto links can be added.'

/** The formatting buttons, in order: what each does, its shortcut, and when it is on. */
const BUTTONS = [
  { name: 'bold', label: 'Bold', keys: 'Ctrl+B', run: (c) => c.toggleBold(), on: (e) => e.isActive('bold') },
  { name: 'italic', label: 'Italic', keys: 'Ctrl+I', run: (c) => c.toggleItalic(), on: (e) => e.isActive('italic') },
  { name: 'heading', label: 'Heading', keys: 'Ctrl+Alt+2', run: (c) => c.toggleHeading({ level: 2 }), on: (e) => e.isActive('heading') },
  { name: 'bullets', label: 'Bulleted list', keys: 'Ctrl+Shift+8', run: (c) => c.toggleBulletList(), on: (e) => e.isActive('bulletList') },
  { name: 'numbers', label: 'Numbered list', keys: 'Ctrl+Shift+7', run: (c) => c.toggleOrderedList(), on: (e) => e.isActive('orderedList') },
  { name: 'link', label: 'Link', keys: 'Ctrl+K', run: null, on: (e) => e.isActive('link') }
]

/**
 * Ask for a link for the selection (or remove the one there). A URL that `allowedLink`
 * refuses is not added, and `say` shows why.
 */
function editLink (editor, say, refocus = true) {
  const chain = () => (refocus ? editor.chain().focus() : editor.chain())
  if (editor.isActive('link')) {
    chain().extendMarkRange('link').unsetLink().run()
    say('')
    return true
  }
  const url = window.prompt('Link address (https://, http:// or mailto:)', 'https://')
  if (url === null || url.trim() === '' || url.trim() === 'https://') return true
  if (!allowedLink(url)) {
    say(`${REFUSED_LINK} “${url.trim().slice(0, 80)}” was not added.`)
    if (refocus) editor.commands.focus()
    return true
  }
  say('')
  chain().extendMarkRange('link').setLink({ href: url.trim() }).run()
  return true
}

/**
 * The toolbar: one tab stop (the buttons' roving tabindex; arrows, Home and End move between
 * them), each button reporting its state with aria-pressed, its shortcut in its title.
 */
function toolbar (editor) {
  const bar = document.createElement('div')
  bar.className = 'ros-toolbar'
  bar.setAttribute('role', 'toolbar')
  bar.setAttribute('aria-label', 'Formatting')
  const message = document.createElement('p')
  message.className = 'ros-message'
  message.setAttribute('role', 'status')
  const say = (text) => { message.textContent = text }
  const buttons = BUTTONS.map((spec, i) => {
    const button = document.createElement('button')
    button.type = 'button'
    button.textContent = spec.label
    button.title = `${spec.label} (${spec.keys})`
    button.dataset.format = spec.name
    button.setAttribute('aria-keyshortcuts', spec.keys.replace('Ctrl', 'Control'))
    button.setAttribute('aria-pressed', 'false')
    button.tabIndex = i === 0 ? 0 : -1
    button.addEventListener('mousedown', (e) => e.preventDefault()) // keep the editor's selection
    button.addEventListener('click', (event) => {
      // By keyboard (no pointer: detail 0) the focus stays on the toolbar, as in any toolbar.
      const chain = event.detail === 0 ? editor.chain() : editor.chain().focus()
      if (spec.run) spec.run(chain).run()
      else editLink(editor, say, event.detail !== 0)
    })
    bar.append(button)
    return button
  })
  bar.addEventListener('keydown', (event) => {
    const at = buttons.indexOf(document.activeElement)
    if (at < 0) return
    const to = { ArrowRight: at + 1, ArrowLeft: at - 1, Home: 0, End: buttons.length - 1 }[event.key]
    if (to === undefined) return
    event.preventDefault()
    const next = buttons[(to + buttons.length) % buttons.length]
    for (const b of buttons) b.tabIndex = b === next ? 0 : -1
    next.focus()
  })
  const update = () => {
    BUTTONS.forEach((spec, i) => buttons[i].setAttribute('aria-pressed', String(Boolean(spec.on(editor)))))
  }
  editor.on('transaction', update)
  editor.on('selectionUpdate', update)
  update()
  return { bar, message, say }
}

/** A Tiptap editor on `element` for the run of show of `doc`; others' carets from
 *  `awareness`, and a formatting toolbar when `editable`. Returns the editor (call
 *  `destroy()` when the view goes). */
export function mountRunOfShow (element, { doc, awareness, editable }) {
  let say = () => {}
  const Carets = Extension.create({
    name: 'carets',
    addProseMirrorPlugins () {
      return [yCursorPlugin(awareness, { cursorBuilder: caret, selectionBuilder: selection })]
    }
  })
  const LinkKey = Extension.create({
    name: 'linkKey',
    addKeyboardShortcuts () {
      return { 'Mod-k': () => editLink(this.editor, (text) => say(text)) }
    }
  })
  const editor = new Editor({
    element,
    editable,
    injectCSS: false,
    editorProps: {
      attributes: { 'aria-label': 'Run of show', role: 'textbox', 'aria-multiline': 'true' },
      transformPasted: (slice) => new Slice(keepAllowedMarks(slice.content), slice.openStart, slice.openEnd)
    },
    extensions: [
      StarterKit.configure({
        undoRedo: false, // Yjs keeps the history of a shared document
        link: {
          openOnClick: false,
          autolink: true,
          protocols: [],
          defaultProtocol: 'https',
          isAllowedUri: (url) => allowedLink(url)
        }
      }),
      Collaboration.configure({ fragment: doc.getXmlFragment(FRAGMENT) }),
      Carets,
      LinkKey
    ]
  })
  if (editable) {
    const tools = toolbar(editor)
    say = tools.say
    element.prepend(tools.bar)
    element.append(tools.message)
    editor.on('destroy', () => { tools.bar.remove(); tools.message.remove() })
  }
  return editor
}
