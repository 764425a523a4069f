// Live updates of a page: the server sends the new HTML of a part of the page (server-sent events), and this swaps
// it in. The page names its event stream in <body data-live>; each event's name is the id of the element it fills.
(function () {
  const url = document.body.dataset.live;
  const connection = document.getElementById("connection");
  if (!url) return;
  const events = new EventSource(url);
  events.addEventListener("open", () => { connection.textContent = "live"; connection.className = "connection live"; });
  events.addEventListener("error", () => { connection.textContent = "reconnecting"; connection.className = "connection"; });
  events.addEventListener("runs", (event) => { document.getElementById("runs").innerHTML = JSON.parse(event.data); });
})();
