import{c as u,d as m}from"./chunk-KJZ6OWI7.js";import"./chunk-4KHJP4GX.js";import"./chunk-XMFJZ5UI.js";import{a as s,d as l}from"./chunk-X5YW32EU.js";function R(e){let n=/^#\/print(?:\/([a-z-]*))?(?:\?(.*))?$/.exec(e);return n?{page:n[1]||"",params:new URLSearchParams(n[2]||"")}:null}var c=e=>(e||"").trim().toLocaleLowerCase();function $(e){let n=new Map;for(let a of e)for(let t of[a.vendor])t&&!n.has(c(t))&&n.set(c(t),t);return[...n.values()].sort((a,t)=>a.localeCompare(t))}function f(e,n){let a=c(n);return e.filter(t=>t.status!=="cancelled"&&(c(t.vendor)===a||c(t.owner)===a))}function b(e){let n=new Map(e.seating.tables.map(t=>[t.id,t])),a=new Set(e.guests.filter(t=>t.plus_one_of).map(t=>t.plus_one_of));return e.guests.filter(t=>t.rsvp!=="declined"&&n.has(e.seating.assignments.get(t.id)?.table_id)).map(t=>({id:t.id,name:t.plus_one&&!a.has(t.id)?`${t.name} and guest`:t.name,table:n.get(e.seating.assignments.get(t.id).table_id).name})).sort((t,r)=>t.name.localeCompare(r.name)||t.id.localeCompare(r.id))}var d=e=>s`<nav class="print-bar" aria-label="Print">
  <a href="#seating">Back to the planner</a> · <a href="#/print">All print views</a>
  <button type="button" class="primary" @click=${()=>print()}>Print</button>
</nav><h2 class="print-title">${e}</h2>`;function h(e){let n=e.profile||{},a=n.names&&n.names.length?n.names.join(" & "):e.wedding;return s`<p class="print-wedding">${a}${n.date?s` · ${e.local.day(n.date)}`:l}${n.venue?s` · ${n.venue}`:l}</p>`}function y(e){let n=u(e);return s`${d("Seating chart")}${h(e)}
    <div class="print-chart">${m(e)}</div>
    <div class="print-tables">
      ${e.seating.tables.map(a=>{let t=[...n.get(a.id).seats.entries()].sort((r,o)=>r[0]-o[0]);return s`<section class="print-table" data-entity=${a.id}>
          <h3>${a.name} <span class="muted">(${t.length}/${a.capacity})</span></h3>
          <ol>${t.map(([r,o])=>s`<li value=${r}>${o.plusOne?`${o.guest.name}'s guest`:o.guest.name}${!o.plusOne&&o.guest.dietary&&o.guest.dietary.length?s` <span class="muted">(${o.guest.dietary.join(", ")})</span>`:l}</li>`)}</ol>
        </section>`})}
    </div>`}function v(e){let n=b(e);return s`${d("Escort cards")}
    ${n.length?s`<ul class="escort-cards">${n.map(a=>s`<li class="escort-card" data-entity=${a.id}>
      <span class="escort-name">${a.name}</span><span class="escort-table">Table ${a.table}</span></li>`)}</ul>`:s`<p class="muted">No one has a seat yet.</p>`}`}function w(e,n){let a=$(e.timeline),t=n?f(e.timeline,n):[],r=e.local.zone,o=null;return s`${d(n?`Run sheet: ${n}`:"Run sheets")}${h(e)}
    <form class="print-bar" @submit=${i=>i.preventDefault()}>
      <label>Vendor <select @change=${i=>{location.hash=`#/print/run-sheet?vendor=${encodeURIComponent(i.target.value)}`}}>
        <option value="" ?selected=${!n}>Choose a vendor</option>
        ${a.map(i=>s`<option value=${i} ?selected=${c(i)===c(n)}>${i}</option>`)}
      </select></label>
    </form>
    ${n?t.length?s`<p class="muted">Times in ${r||"the times written"}.</p>
          <table class="run-sheet"><thead><tr><th scope="col">Start</th><th scope="col">End</th><th scope="col">What</th><th scope="col">Where</th><th scope="col">Notes</th></tr></thead>
          <tbody>${t.map(i=>{let p=e.local.wall(i.start),g=p.day!==o?s`<tr class="run-day"><th colspan="5" scope="rowgroup">${e.local.day(p.day)}</th></tr>`:l;return o=p.day,s`${g}<tr data-entity=${i.id}><td>${e.local.time(i.start)}</td><td>${e.local.time(i.end)}</td>
              <td>${i.title}${i.status==="confirmed"?s` <span class="muted">(confirmed)</span>`:l}</td><td>${i.location||""}</td><td>${i.notes||""}</td></tr>`})}</tbody></table>`:s`<p>Nothing on the timeline for ${n}.</p>`:l}`}function C(e){let n=e.sections.includes("seating"),a=e.sections.includes("timeline");return s`${d("Print")}
    <ul class="print-index">
      ${n?s`<li><a href="#/print/seating">Seating chart</a></li><li><a href="#/print/escort-cards">Escort cards</a></li>`:l}
      ${a?$(e.timeline).map(t=>s`<li><a href=${`#/print/run-sheet?vendor=${encodeURIComponent(t)}`}>Run sheet: ${t}</a></li>`):l}
    </ul>`}function _(e,n){let a=r=>e.sections.includes(r),t;return n.page==="seating"&&a("seating")?t=y(e):n.page==="escort-cards"&&a("seating")&&a("guests")?t=v(e):n.page==="run-sheet"&&a("timeline")?t=w(e,n.params.get("vendor")):t=C(e),s`<div class="print-view print-${n.page||"index"}">${t}</div>`}export{b as escortCards,R as printRoute,_ as printView,f as runSheetItems,$ as vendorsOf};
