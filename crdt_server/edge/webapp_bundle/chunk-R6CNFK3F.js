import{c as u,d as $}from"./chunk-Q2BJG23C.js";import"./chunk-OX4N3Z42.js";import"./chunk-67SWAPUZ.js";import{a as s,d as o}from"./chunk-VHO6CVNK.js";function R(e){let t=/^#\/print(?:\/([a-z-]*))?(?:\?(.*))?$/.exec(e);return t?{page:t[1]||"",params:new URLSearchParams(t[2]||"")}:null}var c=e=>(e||"").trim().toLocaleLowerCase();function h(e){let t=new Map;for(let a of e)for(let n of[a.vendor])n&&!t.has(c(n))&&t.set(c(n),n);return[...t.values()].sort((a,n)=>a.localeCompare(n))}function f(e,t){let a=c(t);return e.filter(n=>n.status!=="cancelled"&&(c(n.vendor)===a||c(n.owner)===a))}function b(e){let t=new Map(e.seating.tables.map(n=>[n.id,n])),a=new Set(e.guests.filter(n=>n.plus_one_of).map(n=>n.plus_one_of));return e.guests.filter(n=>n.rsvp!=="declined"&&t.has(e.seating.assignments.get(n.id)?.table_id)).map(n=>({id:n.id,name:n.plus_one&&!a.has(n.id)?`${n.name} and guest`:n.name,table:t.get(e.seating.assignments.get(n.id).table_id).name})).sort((n,i)=>n.name.localeCompare(i.name)||n.id.localeCompare(i.id))}var d=e=>s`<nav class="print-bar" aria-label="Print">
  <a href="#seating">Back to the planner</a> · <a href="#/print">All print views</a>
  <button type="button" class="primary" @click=${()=>print()}>Print</button>
</nav><h2 class="print-title">${e}</h2>`;function m(e){let t=e.profile||{},a=t.names&&t.names.length?t.names.join(" & "):e.wedding;return s`<p class="print-wedding">${a}${t.date?s` · ${e.local.day(t.date)}`:o}${t.venue?s` · ${t.venue}`:o}</p>`}function y(e){let t=u(e);return s`${d("Seating chart")}${m(e)}
    <div class="print-chart">${$(e)}</div>
    <div class="print-tables">
      ${e.seating.tables.map(a=>{let n=[...t.get(a.id).seats.entries()].sort((i,l)=>i[0]-l[0]);return s`<section class="print-table" data-entity=${a.id}>
          <h3>${a.name} <span class="muted">(${n.length}/${a.capacity})</span></h3>
          <ol>${n.map(([i,l])=>s`<li value=${i}>${l.plusOne?`${l.guest.name}'s guest`:l.guest.name}${!l.plusOne&&l.guest.dietary&&l.guest.dietary.length?s` <span class="muted">(${l.guest.dietary.join(", ")})</span>`:o}</li>`)}</ol>
        </section>`})}
    </div>`}function w(e){let t=b(e);return s`${d("Escort cards")}
    ${t.length?s`<ul class="escort-cards">${t.map(a=>s`<li class="escort-card" data-entity=${a.id}>
      <span class="escort-name">${a.name}</span><span class="escort-table">Table ${a.table}</span></li>`)}</ul>`:s`<p class="muted">No one has a seat yet.</p>`}`}function v(e,t){let a=h(e.timeline),n=t?f(e.timeline,t):[],i=e.local.zone,l=null;return s`${d(t?`Run sheet: ${t}`:"Run sheets")}${m(e)}
    <form class="print-bar" @submit=${r=>r.preventDefault()}>
      <label>Vendor <select @change=${r=>{location.hash=`#/print/run-sheet?vendor=${encodeURIComponent(r.target.value)}`}}>
        <option value="" ?selected=${!t}>Choose a vendor</option>
        ${a.map(r=>s`<option value=${r} ?selected=${c(r)===c(t)}>${r}</option>`)}
      </select></label>
    </form>
    ${t?n.length?s`<p class="muted">Times in ${i||"the times written"}.</p>
          <table class="run-sheet"><thead><tr><th scope="col">Start</th><th scope="col">End</th><th scope="col">What</th><th scope="col">Where</th><th scope="col">Notes</th></tr></thead>
          <tbody>${n.map(r=>{let p=e.local.wall(r.start),g=p.day!==l?s`<tr class="run-day"><th colspan="5" scope="rowgroup">${e.local.day(p.day)}</th></tr>`:o;return l=p.day,s`${g}<tr data-entity=${r.id}><td>${e.local.time(r.start)}</td><td>${e.local.time(r.end)}</td>
              <td>${r.title}${r.status==="confirmed"?s` <span class="muted">(confirmed)</span>`:o}</td><td>${r.location||""}</td><td>${r.notes||""}</td></tr>`})}</tbody></table>`:s`<p>Nothing on the timeline for ${t}.</p>`:o}
    ${t&&n.length&&e.runSheets&&e.can("day.run_sheets")?S(e.runSheets,t):o}`}function S(e,t){let a=e.madeFor(t),n=e.refusedFor(t);return s`<div class="print-bar share-run-sheet">
    <button type="button" ?disabled=${e.busy} @click=${()=>e.share(t)}>Share a read-only link with ${t}</button>
    ${a?s`<label>Link for ${t}, until ${a.expires_at.slice(0,10)}
          <input type="url" readonly .value=${a.url} @focus=${i=>i.target.select()}></label>`:o}
    ${n?s`<p role="alert">${n}</p>`:o}
  </div>`}function _(e){let t=e.sections.includes("seating"),a=e.sections.includes("timeline");return s`${d("Print")}
    <ul class="print-index">
      ${t?s`<li><a href="#/print/seating">Seating chart</a></li><li><a href="#/print/escort-cards">Escort cards</a></li>`:o}
      ${a?h(e.timeline).map(n=>s`<li><a href=${`#/print/run-sheet?vendor=${encodeURIComponent(n)}`}>Run sheet: ${n}</a></li>`):o}
    </ul>`}function L(e,t){let a=i=>e.sections.includes(i),n;return t.page==="seating"&&a("seating")?n=y(e):t.page==="escort-cards"&&a("seating")&&a("guests")?n=w(e):t.page==="run-sheet"&&a("timeline")?n=v(e,t.params.get("vendor")):n=_(e),s`<div class="print-view print-${t.page||"index"}">${n}</div>`}export{b as escortCards,R as printRoute,L as printView,f as runSheetItems,h as vendorsOf};
