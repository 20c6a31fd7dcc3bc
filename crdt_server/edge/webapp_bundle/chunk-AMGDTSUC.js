import{a as R}from"./chunk-XYIGDLPA.js";import{a as i,b as d,d as c}from"./chunk-X5YW32EU.js";var H=1500,W=/^(guest|rsvp|budget|task|timeline|seating|day|document)\./;var B={partner_a:"Partner A",partner_b:"Partner B",both:"Both",null:"No side"};function G(e){return e.some(t=>t&&typeof t.type=="string"&&W.test(t.type))}var P=class{constructor({wedding:t,token:s,onChange:r,throttle:a=H}){this.base=`/api/weddings/${encodeURIComponent(t)}/overview`,this.token=s,this.onChange=r,this.throttle=a,this.figures=null,this.error=null,this.reading=null,this.again=!1,this.timer=null,this.last=0}async read(){return this.reading?(this.again=!0,this.reading):(this.last=Date.now(),this.reading=R(this.token,this.base,"GET").then(({status:t,body:s})=>{t===200&&s?(this.figures=s,this.error=null):this.error=t===0?"The server cannot be reached: the figures shown are the last read.":`The overview could not be read (${s&&s.detail||`HTTP ${t}`}).`}).finally(()=>{this.reading=null,this.onChange(),this.again&&(this.again=!1,this.soon())}),this.reading)}soon(){if(this.timer)return;let t=Math.max(0,this.last+this.throttle-Date.now());this.timer=setTimeout(()=>{this.timer=null,this.read()},t)}onEvents(t){G(t)&&this.soon()}shown(){!this.figures&&!this.reading&&!this.error?this.read():Date.now()-this.last>6e4&&this.soon()}},w=560,p=150,A=16,F=26,U=(e,t=22)=>e.length>t?`${e.slice(0,t-1)}\u2026`:e;function L(e,t,s,r,a,n){return i`<figure class="card overview-chart" data-chart=${e}>
    <figcaption>${s}</figcaption>
    <svg viewBox=${`0 0 ${w} ${a}`} width="100%" role="img" aria-label=${t}>
      <title>${t}</title>${r}</svg>
    <details class="chart-figures">
      <summary>Show as a table</summary>
      ${n}
    </details>
  </figure>`}function q(e){return e.map((t,s)=>d`<rect class=${t.cls} x=${p+s*120} y="2" width="12" height="12"></rect>
    <text x=${p+s*120+16} y="13" class="chart-legend">${t.label}</text>`)}function z(e,t,s,r,a){return i`<table class="chart-table">
    <caption>${e}</caption>
    <thead><tr><th scope="col">${t}</th>${r.map(n=>i`<th scope="col">${n.label}</th>`)}</tr></thead>
    <tbody>${s.map(n=>i`<tr><th scope="row">${n.name}</th>${r.map(o=>i`<td>${a(n.values[o.key]||0)}</td>`)}</tr>`)}</tbody>
  </table>`}function f({name:e,caption:t,label:s,rows:r,series:a,stacked:n=!0,format:o=String,head:M=""}){let u=r.map($=>n?a.reduce((g,y)=>g+($.values[y.key]||0),0):Math.max(0,...a.map(g=>$.values[g.key]||0))),x=Math.max(1,...u),v=w-p-60,m=$=>Math.max(0,Math.round(v*$/x)),b=n?A:Math.max(6,Math.floor(A*2/a.length)),_=n?F:b*a.length+10,l=24+Math.max(1,r.length)*_,h=r.map(($,g)=>{let y=24+g*_,N=p,j=a.map((T,V)=>{let S=m($.values[T.key]||0),I=n?d`<rect class=${T.cls} x=${N} y=${y} width=${S} height=${A}></rect>`:d`<rect class=${T.cls} x=${p} y=${y+V*b} width=${S} height=${b-1}></rect>`;return N+=n?S:0,I});return d`<g data-row=${$.name}><text x="0" y=${y+12} class="chart-label">${U($.name)}</text>${j}
      <text x=${p+m(u[g])+4} y=${y+12} class="chart-value">${n?o(u[g]):""}</text></g>`}),O=r.length?c:d`<text x=${p} y="40" class="chart-label">Nothing yet</text>`;return L(e,s,t,d`${q(a)}${h}${O}`,l,z(t,M,r,a,o))}function J(e,t){let s=e.length?`RSVP progress: ${e[e.length-1].answered} of ${t} guests answered by ${e[e.length-1].day}, over ${e.length} day${e.length===1?"":"s"} with answers`:"RSVP progress: no answers yet",r=180,a=24,n=r-24,o=40,M=e.length>1?(w-o-20)/(e.length-1):0,u=Math.max(1,t,...e.map(l=>l.answered)),x=Math.max(1,...e.map(l=>l.accepted+l.declined+l.pending)),v=(l,h)=>n-(n-a)*l/h,m=l=>o+(e.length>1?l*M:(w-o)/2),b=e.map((l,h)=>`${m(h)},${v(l.answered,u)}`).join(" "),_=d`
    <rect class="accepted" x=${p} y="2" width="12" height="12"></rect><text x=${p+16} y="13" class="chart-legend">Answers that day</text>
    <line class="axis" x1=${o} y1=${n} x2=${w-10} y2=${n}></line>
    <text x="0" y=${a+4} class="chart-label">${u}</text><text x="0" y=${n} class="chart-label">0</text>
    ${e.map((l,h)=>d`<rect class="answers-day" x=${m(h)-5} y=${v(l.accepted+l.declined+l.pending,x*2)} width="10"
      height=${n-v(l.accepted+l.declined+l.pending,x*2)}></rect>`)}
    ${e.length?d`<polyline class="progress" points=${b} fill="none"></polyline>`:c}
    ${e.map((l,h)=>d`<circle class="progress-point" cx=${m(h)} cy=${v(l.answered,u)} r="3.5"></circle>`)}
    ${e.length?d`<text x=${o} y=${r-6} class="chart-label">${e[0].day}</text>
      <text x=${w-10} y=${r-6} text-anchor="end" class="chart-label">${e[e.length-1].day}</text>`:d`<text x=${o+10} y="80" class="chart-label">No answers yet</text>`}`;return L("rsvp-progress",s,"RSVP progress: answers by day",_,r,i`<table class="chart-table">
    <caption>Answers by day</caption>
    <thead><tr><th scope="col">Day</th><th scope="col">Accepted</th><th scope="col">Declined</th><th scope="col">Not sure yet</th><th scope="col">Answered by then</th></tr></thead>
    <tbody>${e.map(l=>i`<tr><th scope="row">${l.day}</th><td>${l.accepted}</td><td>${l.declined}</td><td>${l.pending}</td><td>${l.answered}</td></tr>`)}</tbody>
  </table>`)}var E=[{key:"accepted",label:"Accepted",cls:"accepted"},{key:"pending",label:"Not answered",cls:"pending"},{key:"declined",label:"Declined",cls:"declined"}],k=(e,t,s)=>`${e} ${e===1?t:s}`;function K(e){let t=e.by_side.map(n=>({name:B[n.side]||n.side||B.null,values:n})),s=e.by_household.slice(0,40).map(n=>({name:n.name,values:n})),r=[...Object.entries(e.meals).map(([n,o])=>({name:n,values:{people:o}})),...e.no_meal?[{name:"No meal chosen",values:{people:e.no_meal}}]:[]],a=n=>n.map(o=>`${o.name}: ${o.values.accepted||0} accepted, ${o.values.pending||0} not answered, ${o.values.declined||0} declined`).join("; ");return i`
    <section class="overview-part" aria-labelledby="overview-guests"><h3 id="overview-guests">Guests</h3>
      <p class="overview-figures">${k(e.people,"person","people")} invited: <strong>${e.rsvp.accepted}</strong> accepted,
        <strong>${e.rsvp.pending}</strong> not answered, <strong>${e.rsvp.declined}</strong> declined.</p>
      ${e.answers_by_day?J(e.answers_by_day,e.guests):c}
      ${f({name:"rsvp-sides",caption:"Answers by side",head:"Side",rows:t,series:E,label:`Answers by side: ${a(t)||"no guests yet"}`})}
      ${f({name:"rsvp-households",caption:e.by_household.length>40?"Answers by household (the first 40)":"Answers by household",head:"Household",rows:s,series:E,label:`Answers by household: ${a(s)||"no households yet"}${e.without_household?`; ${k(e.without_household,"person","people")} in no household`:""}`})}
      ${f({name:"meals",caption:"Meals of who may come",head:"Meal",rows:r,series:[{key:"people",label:"People",cls:"meal"}],label:`Meals: ${r.map(n=>`${n.name} ${n.values.people}`).join(", ")||"none chosen yet"}`})}
    </section>`}var C=null,D=null;function Q(e,t,s,r){return C?C.budgetChart(t,r,s):(D||(D=import("./chunk-HNLH5YLR.js").then(a=>{C=a,e.render()}).catch(()=>{D=null})),i`<p class="muted">Loading the chart…</p>`)}function X(e,t,s){let r=t.by_month.map(o=>({name:o.month==="undated"?"No date":o.month,values:o})),a=t.total!==null&&t.total!==void 0?t.total-t.paid-t.scheduled:null,n=t.by_category.map(o=>({...o,id:o.id||"-",name:o.name||"No such category"}));return i`
    <section class="overview-part" aria-labelledby="overview-budget"><h3 id="overview-budget">Budget</h3>
      <p class="overview-figures">Planned <strong>${s(t.planned)}</strong>, paid <strong>${s(t.paid)}</strong>,
        scheduled <strong>${s(t.scheduled)}</strong>${a!==null?i`, ${a<0?"over the total by":"left of the total"} <strong>${s(Math.abs(a))}</strong>`:c}.</p>
      ${Q(e,n,`Budget by category: ${n.map(o=>`${o.name} planned ${s(o.planned)}, paid ${s(o.paid)}, scheduled ${s(o.scheduled)}`).join("; ")||"no categories yet"}`,s)}
      ${f({name:"budget-months",caption:"Paid and scheduled by month",head:"Month",rows:r,format:s,series:[{key:"paid",label:"Paid",cls:"paid"},{key:"scheduled",label:"Scheduled",cls:"scheduled"}],label:`Budget by month: ${r.map(o=>`${o.name} paid ${s(o.values.paid)}, scheduled ${s(o.values.scheduled)}`).join("; ")||"no payments yet"}`})}
    </section>`}function Y(e){let t=e.by_month.map(s=>({name:s.month==="undated"?"No day":s.month,values:s}));return i`
    <section class="overview-part" aria-labelledby="overview-tasks"><h3 id="overview-tasks">Tasks</h3>
      <p class="overview-figures"><strong>${e.done}</strong> of ${k(e.total,"task","tasks")} done;
        <strong class=${e.overdue?"overdue":""}>${e.overdue}</strong> overdue, <strong>${e.due_today}</strong> due today,
        <strong>${e.due_soon}</strong> due within a week.</p>
      ${f({name:"tasks-months",caption:"Tasks done against due, by month",head:"Month",rows:t,stacked:!1,series:[{key:"due",label:"Due",cls:"due"},{key:"done",label:"Done",cls:"done"}],label:`Tasks by month: ${t.map(s=>`${s.name} ${s.values.done} of ${s.values.due} done`).join("; ")||"no tasks yet"}`})}
    </section>`}function Z(e,t){if(!e.day)return c;let s=e.vendors.filter(a=>a.ready).length,r=(a,n)=>i`<span class=${a?"ready":"missing"}>${a?"\u2713":"\u2717"} ${n}</span>`;return i`
    <section class="overview-part" aria-labelledby="overview-vendors"><h3 id="overview-vendors">The day's vendors</h3>
      <p class="overview-figures">${e.vendors.length?i`<strong>${s}</strong> of ${k(e.vendors.length,"vendor","vendors")} ready for ${t.day(e.day)}.`:`No vendor on the timeline for ${t.day(e.day)} yet.`}</p>
      ${e.vendors.length?i`<table class="per-table overview-vendors">
        <caption class="sr-only">The day's vendors, and what each still needs</caption>
        <thead><tr><th scope="col">Vendor</th><th scope="col">Arrival</th><th scope="col">Contact</th><th scope="col">Calendar linked</th></tr></thead>
        <tbody>${e.vendors.map(a=>i`<tr data-vendor=${a.id} class=${a.ready?"ready":""}>
          <th scope="row">${a.name}${a.category?i` <span class="muted">(${a.category})</span>`:c}${a.ready?i` <span class="pill accepted">ready</span>`:c}</th>
          <td>${a.arrival?t.time(a.arrival):r(!1,"no call time")}</td>
          <td>${a.contact?i`${a.contact.name||""} ${a.contact.phone?i`<a href=${`tel:${a.contact.phone}`}>${a.contact.phone}</a>`:c} ${a.contact.email?i`<a href=${`mailto:${a.contact.email}`}>${a.contact.email}</a>`:c}`:r(a.has_contact,a.has_contact?"given":"none")}</td>
          <td>${r(a.run_sheet||a.members>0,a.run_sheet?"run sheet link":a.members>0?`${k(a.members,"account","accounts")} in the app`:"not yet")}</td>
        </tr>`)}</tbody></table>`:c}
    </section>`}function se(e){e.overview||(e.overview=new P({wedding:e.wedding,token:()=>e.keeper.token,onChange:()=>e.render()}));let t=e.overview;t.shown();let s=t.figures,r=a=>e.local.money(a);return i`<section class="overview" aria-labelledby="overview-title">
    <header class="section-head"><h2 id="overview-title">Overview</h2>
      <button type="button" class="link print-overview" @click=${()=>print()}>Print</button></header>
    ${t.error?i`<p class="banner" role="status">${t.error}</p>`:c}
    ${s?i`
      ${s.guests?K(s.guests):c}
      ${s.budget?X(e,s.budget,r):c}
      ${s.tasks?Y(s.tasks):c}
      ${s.vendors?Z(s.vendors,e.local):c}
      <p class="muted overview-read">Figures as of ${e.local.dateTime(new Date(t.last).toISOString())}; they follow changes as they are made.</p>`:t.error?c:i`<p class="muted">Reading the figures…</p>`}
  </section>`}export{P as OverviewFigures,H as THROTTLE_MS,f as barChart,G as concerns,se as overviewView,J as progressChart};
