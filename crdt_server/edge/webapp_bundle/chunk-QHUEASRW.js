import{a as $,e as g}from"./chunk-ZOVZW5YI.js";import{c as m,d as h}from"./chunk-NV3QKEQR.js";import"./chunk-LY2HTBXW.js";import"./chunk-37EYT3TU.js";import{a as s,d as i}from"./chunk-X5YW32EU.js";function E(e){let t=/^#\/print(?:\/([a-z-]*))?(?:\?(.*))?$/.exec(e);return t?{page:t[1]||"",params:new URLSearchParams(t[2]||"")}:null}var c=e=>(e||"").trim().toLocaleLowerCase();function f(e){let t=new Map;for(let a of e)for(let n of[a.vendor])n&&!t.has(c(n))&&t.set(c(n),n);return[...t.values()].sort((a,n)=>a.localeCompare(n))}function w(e,t){let a=c(t);return e.filter(n=>n.status!=="cancelled"&&(c(n.vendor)===a||c(n.owner)===a))}function v(e){let t=new Map(e.seating.tables.map(n=>[n.id,n])),a=new Set(e.guests.filter(n=>n.plus_one_of).map(n=>n.plus_one_of));return e.guests.filter(n=>n.rsvp!=="declined"&&t.has(e.seating.assignments.get(n.id)?.table_id)).map(n=>({id:n.id,name:n.plus_one&&!a.has(n.id)?`${n.name} and guest`:n.name,table:t.get(e.seating.assignments.get(n.id).table_id).name})).sort((n,o)=>n.name.localeCompare(o.name)||n.id.localeCompare(o.id))}var d=e=>s`<nav class="print-bar" aria-label="Print">
  <a href="#seating">Back to the planner</a> · <a href="#/print">All print views</a>
  <button type="button" class="primary" @click=${()=>print()}>Print</button>
</nav><h2 class="print-title">${e}</h2>`;function b(e){let t=e.profile||{},a=t.names&&t.names.length?t.names.join(" & "):e.wedding;return s`<p class="print-wedding">${a}${t.date?s` · ${e.local.day(t.date)}`:i}${t.venue?s` · ${t.venue}`:i}</p>`}function S(e){let t=m(e);return s`${d("Seating chart")}${b(e)}
    <div class="print-chart">${h(e)}</div>
    <div class="print-tables">
      ${e.seating.tables.map(a=>{let n=[...t.get(a.id).seats.entries()].sort((o,l)=>o[0]-l[0]);return s`<section class="print-table" data-entity=${a.id}>
          <h3>${a.name} <span class="muted">(${n.length}/${a.capacity})</span></h3>
          <ol>${n.map(([o,l])=>s`<li value=${o}>${l.plusOne?`${l.guest.name}'s guest`:l.guest.name}${!l.plusOne&&l.guest.dietary&&l.guest.dietary.length?s` <span class="muted">(${l.guest.dietary.join(", ")})</span>`:i}</li>`)}</ol>
        </section>`})}
    </div>`}function C(e){let t=v(e);return s`${d("Escort cards")}
    ${t.length?s`<ul class="escort-cards">${t.map(a=>s`<li class="escort-card" data-entity=${a.id}>
      <span class="escort-name">${a.name}</span><span class="escort-table">Table ${a.table}</span></li>`)}</ul>`:s`<p class="muted">No one has a seat yet.</p>`}`}function _(e,t){let a=e.day&&e.day.state,n=a&&(a.vendors||[]).find(o=>o.catering&&c(o.name)===c(t));return n?s`<p class="catering"><strong>Cooking for:</strong> ${g(n.catering)}</p>`:i}function P(e,t){let a=f(e.timeline),n=t?w(e.timeline,t):[],o=e.local.zone,l=e.profile&&e.profile.venue||"",u=null;return s`${d(t?`Run sheet: ${t}`:"Run sheets")}${b(e)}
    <form class="print-bar" @submit=${r=>r.preventDefault()}>
      <label>Vendor <select @change=${r=>{location.hash=`#/print/run-sheet?vendor=${encodeURIComponent(r.target.value)}`}}>
        <option value="" ?selected=${!t}>Choose a vendor</option>
        ${a.map(r=>s`<option value=${r} ?selected=${c(r)===c(t)}>${r}</option>`)}
      </select></label>
    </form>
    ${t?n.length?s`${_(e,t)}<p class="muted">Times in ${$(o)}${l?s`; where nothing else is said, at ${l}`:i}.</p>
          <table class="run-sheet"><thead><tr><th scope="col">Start</th><th scope="col">End</th><th scope="col">What</th><th scope="col">Where</th><th scope="col">Notes</th></tr></thead>
          <tbody>${n.map(r=>{let p=e.local.wall(r.start),y=p.day!==u?s`<tr class="run-day"><th colspan="5" scope="rowgroup">${e.local.day(p.day)}</th></tr>`:i;return u=p.day,s`${y}<tr data-entity=${r.id}><td>${e.local.time(r.start)}</td><td>${e.local.time(r.end)}</td>
              <td>${r.title}${r.status==="confirmed"?s` <span class="muted">(confirmed)</span>`:i}</td><td>${r.location||l||""}</td><td>${r.notes||""}</td></tr>`})}</tbody></table>`:s`<p>Nothing on the timeline for ${t}.</p>`:i}
    ${t&&n.length&&e.runSheets&&e.can("day.run_sheets")?R(e.runSheets,t):i}`}function R(e,t){let a=e.madeFor(t),n=e.refusedFor(t);return s`<div class="print-bar share-run-sheet">
    <button type="button" ?disabled=${e.busy} @click=${()=>e.share(t)}>Share a read-only link with ${t}</button>
    ${a?s`<label>Link for ${t}, until ${a.expires_at.slice(0,10)}
          <input type="url" readonly .value=${a.url} @focus=${o=>o.target.select()}></label>`:i}
    ${n?s`<p role="alert">${n}</p>`:i}
  </div>`}function k(e){let t=e.sections.includes("seating"),a=e.sections.includes("timeline");return s`${d("Print")}
    <ul class="print-index">
      ${t?s`<li><a href="#/print/seating">Seating chart</a></li><li><a href="#/print/escort-cards">Escort cards</a></li>`:i}
      ${a?f(e.timeline).map(n=>s`<li><a href=${`#/print/run-sheet?vendor=${encodeURIComponent(n)}`}>Run sheet: ${n}</a></li>`):i}
    </ul>`}function I(e,t){let a=o=>e.sections.includes(o),n;return t.page==="seating"&&a("seating")?n=S(e):t.page==="escort-cards"&&a("seating")&&a("guests")?n=C(e):t.page==="run-sheet"&&a("timeline")?n=P(e,t.params.get("vendor")):n=k(e),s`<div class="print-view print-${t.page||"index"}">${n}</div>`}export{v as escortCards,E as printRoute,I as printView,w as runSheetItems,f as vendorsOf};
