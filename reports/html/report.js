// Hover details for the timeline: the column under the pointer (or chosen with the arrow keys, or
// named by the address's #t=SECONDS) gets a cursor and a box with its hover target's text. Without
// this script the same text is each column's <title>, the browser's own tooltip.
(function () {
  "use strict";
  var svg = document.getElementById("timeline"), tip = document.getElementById("tip");
  if (!svg || !tip || !svg.getScreenCTM) return;
  var hits = svg.querySelectorAll(".hits rect"), cursor = svg.querySelector(".cursor");
  var texts = [], i;
  for (i = 0; i < hits.length; i++) {
    var t = hits[i].querySelector("title");
    texts.push(t ? t.textContent : "");
    if (t) t.parentNode.removeChild(t); // the box replaces the browser's tooltip
  }
  var x0 = +svg.getAttribute("data-plot-x"), w = +svg.getAttribute("data-col-w");
  var bucket = +svg.getAttribute("data-bucket") || 1;
  var top = +svg.getAttribute("data-plot-y"), vbw = svg.viewBox.baseVal.width;
  var current = -1, pinned = -1;

  function show(i, clientY) {
    if (!(i >= 0 && i < texts.length)) { hide(); return; }
    current = i;
    var cx = x0 + (i + 0.5) * w;
    cursor.setAttribute("x1", cx);
    cursor.setAttribute("x2", cx);
    cursor.classList.add("on");
    var lines = texts[i].split("\n");
    tip.textContent = "";
    var head = document.createElement("b");
    head.textContent = lines[0];
    tip.appendChild(head);
    for (var k = 1; k < lines.length; k++) {
      tip.appendChild(document.createElement("br"));
      tip.appendChild(document.createTextNode(lines[k]));
    }
    tip.hidden = false;
    var box = svg.getBoundingClientRect(), wrap = svg.parentNode.getBoundingClientRect();
    var scale = box.width / vbw, px = box.left - wrap.left + cx * scale;
    var left = px + 14;
    if (left + tip.offsetWidth > wrap.width) left = px - 14 - tip.offsetWidth;
    tip.style.left = Math.max(0, left) + "px";
    var y = clientY == null ? box.top - wrap.top + top * scale + 8 : clientY - wrap.top + 14;
    tip.style.top = Math.max(0, y) + "px";
    svg.setAttribute("data-shown", String(i * bucket));
  }
  function hide() {
    if (pinned >= 0) { show(pinned); return; }
    current = -1;
    tip.hidden = true;
    cursor.classList.remove("on");
    svg.removeAttribute("data-shown");
  }
  function column(e) {
    var p = svg.createSVGPoint();
    p.x = e.clientX;
    p.y = e.clientY;
    return Math.floor((p.matrixTransform(svg.getScreenCTM().inverse()).x - x0) / w);
  }
  var layer = svg.querySelector(".hits");
  layer.addEventListener("mousemove", function (e) { show(column(e), e.clientY); });
  layer.addEventListener("mouseleave", hide);
  layer.addEventListener("click", function (e) { pinned = column(e); show(pinned, e.clientY); });
  svg.addEventListener("keydown", function (e) {
    var step = { ArrowRight: 1, ArrowLeft: -1, PageDown: 10, PageUp: -10 }[e.key];
    if (step) {
      pinned = Math.min(Math.max(current < 0 ? 0 : current + step, 0), texts.length - 1);
      show(pinned);
      e.preventDefault();
    } else if (e.key === "Escape") {
      pinned = -1;
      hide();
    }
  });
  function fromHash() {
    var m = /^#t=(\d+(?:\.\d+)?)$/.exec(location.hash);
    if (!m) return;
    pinned = Math.min(Math.floor(+m[1] / bucket), texts.length - 1);
    show(pinned);
    if (svg.scrollIntoView) svg.scrollIntoView({ block: "nearest" });
  }
  window.addEventListener("hashchange", fromHash);
  fromHash();
  svg.setAttribute("data-hover", "ready");
})();
