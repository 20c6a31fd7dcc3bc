// One way to call the server's JSON routes with the person's token: `{status, body}`, where
// `status` is 0 when the server cannot be reached (offline) and `body` the answer's JSON (or
// null). Never throws.

/** `token()` gives the current token; `path` is appended to `base`. */
export async function call (token, base, method, path = '', body = undefined, headers = {}) {
  const init = { method, headers: { Authorization: `Bearer ${token()}`, ...headers } }
  if (body !== undefined) {
    init.body = JSON.stringify(body)
    init.headers['Content-Type'] = 'application/json'
  }
  let response
  try {
    response = await fetch(`${base}${path}`, init)
  } catch {
    return { status: 0, body: null }
  }
  return { status: response.status, body: await response.json().catch(() => null) }
}

/** A refusal in words: the problem's `detail`, else the status. */
export function reasonOf ({ status, body }) {
  return (body && body.detail) || (status ? `HTTP ${status}` : 'the server cannot be reached')
}

/** A refusal in the words of the field it names (the problem's first `errors` entry: "this
 *  item is fixed: it keeps its time"), else `reasonOf`. */
export function fieldReasonOf (answer) {
  const named = answer.body && Array.isArray(answer.body.errors) ? answer.body.errors[0] : null
  return (named && typeof named.message === 'string' && named.message) || reasonOf(answer)
}
