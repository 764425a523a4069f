// Live updates of a page: the server sends the new HTML of a part of the page (server-sent events), and this swaps
// it in. The page names its event stream in <body data-live> and the parts it updates in <body data-parts>; each
// event's name is the id of the element it fills. Sections a reader opened (<details> with an id) stay open.
(function () {
  const url = document.body.dataset.live;
  const connection = document.getElementById("connection");
  if (!url) return;

  function openTarget() {  // a link to a nested team, a conversation or a step opens it
    const target = location.hash && document.getElementById(decodeURIComponent(location.hash.slice(1)));
    if (target && target.tagName === "DETAILS") target.open = true;
  }

  function swap(part, html) {  // a section keeps the state its reader left it in; a new one comes as the server sent it
    const wasOpen = new Map([...part.querySelectorAll("details[id]")].map((d) => [d.id, d.open]));
    part.innerHTML = html;
    for (const details of part.querySelectorAll("details[id]")) {
      if (wasOpen.has(details.id)) details.open = wasOpen.get(details.id);
    }
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
