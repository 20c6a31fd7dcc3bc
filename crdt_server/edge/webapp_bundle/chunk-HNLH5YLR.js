import{a as l,b as r}from"./chunk-X5YW32EU.js";var c=14,u=6,$=c*2+u+18,h=140,g=560;function v(a){let s=new Map,n=new Map;for(let e of a.payments){let i=e.status==="scheduled"?n:s;i.set(e.category_id,(i.get(e.category_id)||0)+e.amount)}return a.categories.map(e=>({id:e.id,name:e.name,planned:e.planned,paid:s.get(e.id)||0,scheduled:n.get(e.id)||0}))}function M(a,s,n=""){let e=Math.max(1,...a.map(t=>Math.max(t.planned,t.paid+t.scheduled))),i=g-h-10,o=t=>Math.max(0,Math.round(i*t/e)),m=Math.max($,a.length*$)+24,y=a.map((t,p)=>{let d=24+p*$,b=o(t.paid),f=t.paid+t.scheduled>t.planned;return r`<g class=${f?"over":""} data-category=${t.id}>
      <text x="0" y=${d+c} class="chart-label">${t.name.length>22?t.name.slice(0,21)+"\u2026":t.name}</text>
      <rect class="planned" x=${h} y=${d} width=${o(t.planned)} height=${c}></rect>
      <rect class="paid" x=${h} y=${d+c+u/2} width=${b} height=${c}></rect>
      <rect class="scheduled" x=${h+b} y=${d+c+u/2} width=${o(t.scheduled)} height=${c}></rect>
    </g>`}),x=[["planned","Planned"],["paid","Paid"],["scheduled","Scheduled"]].map(([t,p],d)=>r`<rect class=${t} x=${h+d*110} y="2" width="12" height="12"></rect><text x=${h+d*110+16} y="13" class="chart-legend">${p}</text>`);return l`<figure class="card budget-chart" data-chart="budget">
    <figcaption>Planned, paid and scheduled by category</figcaption>
    ${n?l`<svg viewBox=${`0 0 ${g} ${m}`} width="100%" role="img" aria-label=${n}><title>${n}</title>${x}${y}</svg>`:l`<svg viewBox=${`0 0 ${g} ${m}`} width="100%" role="presentation" aria-hidden="true" focusable="false">${x}${y}</svg>`}
    <details class="chart-figures">
      <summary>Show the chart as a table</summary>
      <table class="chart-table">
        <caption>Planned, paid and scheduled by category</caption>
        <thead><tr><th scope="col">Category</th><th scope="col">Planned</th><th scope="col">Paid</th><th scope="col">Scheduled</th></tr></thead>
        <tbody>${a.map(t=>l`<tr data-category=${t.id}><th scope="row">${t.name}</th><td>${s(t.planned)}</td><td>${s(t.paid)}</td><td>${s(t.scheduled)}</td></tr>`)}</tbody>
      </table>
    </details>
  </figure>`}export{M as budgetChart,v as chartRows};
