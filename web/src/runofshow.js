// The run of show: the timeline's rich text (Y.XmlFragment "runofshow"), edited with Tiptap
// over the same Yjs document and awareness as the rest of the app. This module is its own
// lazy chunk: main.js imports it only when someone opens the run of show.
//
// The app's Content-Security-Policy allows no inline styles, so nothing here writes a style
// attribute: Tiptap's own style sheet is not injected (its rules are in styles.css) and the
// other people's carets and selections are coloured by class, not by inline colour.

import { Editor, Extension } from '@tiptap/core'
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

/** A Tiptap editor on `element` for the run of show of `doc`; others' carets from
 *  `awareness`. Returns the editor (call `destroy()` when the view goes). */
export function mountRunOfShow (element, { doc, awareness, editable }) {
  const Carets = Extension.create({
    name: 'carets',
    addProseMirrorPlugins () {
      return [yCursorPlugin(awareness, { cursorBuilder: caret, selectionBuilder: selection })]
    }
  })
  return new Editor({
    element,
    editable,
    injectCSS: false,
    editorProps: { attributes: { 'aria-label': 'Run of show', role: 'textbox', 'aria-multiline': 'true' } },
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
      Carets
    ]
  })
}
