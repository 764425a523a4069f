// Live updates of a page: the server sends the new HTML of a part of the page (server-sent events), and this swaps
// it in. The page names its event stream in <body data-live> and the parts it updates in <body data-parts>; each
// event's name is the id of the element it fills. Sections a reader opened and notes they typed survive a swap.
(function () {
  const url = document.body.dataset.live;
  const connection = document.getElementById("connection");
  if (!url) return;

  function openTarget() {  // a link to a nested team, a conversation or a step opens it
    const target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target && target.tagName === "DETAILS") target.open = true;
  }

  function swap(part, html) {  // what its reader opened, typed or ticked stays as they left it
    const wasOpen = new Map([...part.querySelectorAll("details[id]")].map((d) => [d.id, d.open]));
    const typed = new Map([...part.querySelectorAll("input[id]")].map((i) => [i.id, [i.value, i.checked]]));
    const focused = document.activeElement && part.contains(document.activeElement) ? document.activeElement.id : "";
    part.innerHTML = html;
    for (const details of part.querySelectorAll("details[id]")) {
      if (wasOpen.has(details.id)) details.open = wasOpen.get(details.id);
    }
    for (const input of part.querySelectorAll("input[id]")) {
      if (typed.has(input.id)) [input.value, input.checked] = typed.get(input.id);
    }
    if (focused && document.getElementById(focused)) document.getElementById(focused).focus();
  }

  const events = new EventSource(url);
  events.addEventListener("open", () => { connection.textContent = "live"; connection.className = "connection live"; });
  events.addEventListener("error", () => { connection.textContent = "reconnecting"; connection.className = "connection"; });
  for (const name of (document.body.dataset.parts || "").split(" ").filter(Boolean)) {
    events.addEventListener(name, (event) => swap(document.getElementById(name), JSON.parse(event.data)));
  }
  window.addEventListener("hashchange", openTarget);
  openTarget();
})();
