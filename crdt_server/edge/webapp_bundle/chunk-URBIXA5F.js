import{a,b,c,d,e}from"./chunk-72U6ZFI7.js";import"./chunk-RTTJJU3V.js";import"./chunk-XMFJZ5UI.js";export{d as chartSvg,e as chartView,b as geometry,c as occupancy,a as placeOf};
