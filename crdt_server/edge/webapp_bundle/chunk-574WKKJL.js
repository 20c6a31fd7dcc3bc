import{a as i,b as p}from"./chunk-VHO6CVNK.js";var c=14,g=6,r=c*2+g+18,h=140,u=560;function w(a){let s=new Map,l=new Map;for(let e of a.payments){let n=e.status==="scheduled"?l:s;n.set(e.category_id,(n.get(e.category_id)||0)+e.amount)}return a.categories.map(e=>({id:e.id,name:e.name,planned:e.planned,paid:s.get(e.id)||0,scheduled:l.get(e.id)||0}))}function M(a,s){let l=Math.max(1,...a.map(t=>Math.max(t.planned,t.paid+t.scheduled))),e=u-h-10,n=t=>Math.max(0,Math.round(e*t/l)),m=Math.max(r,a.length*r)+24,y=a.map((t,o)=>{let d=24+o*r,$=n(t.paid),b=t.paid+t.scheduled>t.planned;return p`<g class=${b?"over":""} data-category=${t.id}>
      <text x="0" y=${d+c} class="chart-label">${t.name.length>22?t.name.slice(0,21)+"\u2026":t.name}</text>
      <rect class="planned" x=${h} y=${d} width=${n(t.planned)} height=${c}></rect>
      <rect class="paid" x=${h} y=${d+c+g/2} width=${$} height=${c}></rect>
      <rect class="scheduled" x=${h+$} y=${d+c+g/2} width=${n(t.scheduled)} height=${c}></rect>
    </g>`}),x=[["planned","Planned"],["paid","Paid"],["scheduled","Scheduled"]].map(([t,o],d)=>p`<rect class=${t} x=${h+d*110} y="2" width="12" height="12"></rect><text x=${h+d*110+16} y="13" class="chart-legend">${o}</text>`);return i`<figure class="card budget-chart" data-chart="budget">
    <figcaption>Planned, paid and scheduled by category</figcaption>
    <svg viewBox=${`0 0 ${u} ${m}`} width="100%" role="presentation" aria-hidden="true" focusable="false">${x}${y}</svg>
    <details class="chart-figures">
      <summary>Show the chart as a table</summary>
      <table class="chart-table">
        <caption>Planned, paid and scheduled by category</caption>
        <thead><tr><th scope="col">Category</th><th scope="col">Planned</th><th scope="col">Paid</th><th scope="col">Scheduled</th></tr></thead>
        <tbody>${a.map(t=>i`<tr data-category=${t.id}><th scope="row">${t.name}</th><td>${s(t.planned)}</td><td>${s(t.paid)}</td><td>${s(t.scheduled)}</td></tr>`)}</tbody>
      </table>
    </details>
  </figure>`}export{M as budgetChart,w as chartRows};
