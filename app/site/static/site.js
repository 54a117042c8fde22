// 鹿视频: a few lines of progressive enhancement; every page works without it.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) { event.preventDefault(); return; }
  if (form.dataset.once !== undefined) {
    if (form.dataset.sent) { event.preventDefault(); return; }  // a double click submits once
    form.dataset.sent = "1";
    form.querySelectorAll("button[type=submit]").forEach((b) => { b.disabled = true; });
  }
});

// The order page asks for the payment result until it is known.
function watchOrder() {
  const box = document.getElementById("order");
  if (!box || box.dataset.status !== "pending") return;
  const poll = async () => {
    try {
      const reply = await fetch(box.dataset.statusUrl, { headers: { Accept: "application/json" } });
      if (reply.ok && (await reply.json()).status !== "pending") { window.location.reload(); return; }
    } catch (e) { /* the network blinked: try again */ }
    setTimeout(poll, 2000);
  };
  setTimeout(poll, 2000);
}
document.addEventListener("DOMContentLoaded", watchOrder);

// HLS: native where the browser has it (Safari, iOS), else the vendored hls.js.
function startHls() {
  const video = document.querySelector("video[data-hls]");
  if (!video) return;
  const url = video.dataset.hls;
  if (video.canPlayType("application/vnd.apple.mpegurl")) {
    video.dataset.engine = "native";
    video.src = url;
  } else if (window.Hls && window.Hls.isSupported()) {
    video.dataset.engine = "hls.js";
    const hls = new window.Hls();
    hls.loadSource(url);
    hls.attachMedia(video);
  } else {
    video.insertAdjacentHTML("afterend", '<p class="error" role="alert">当前浏览器无法播放该视频</p>');
  }
}
document.addEventListener("DOMContentLoaded", startHls);

// A preview stops at its end even where the provider's CDN does not cut the stream.
function limitPreview() {
  const video = document.getElementById("player");
  const limit = video ? Number(video.dataset.previewSeconds || 0) : 0;
  if (!limit) return;
  video.addEventListener("timeupdate", () => {
    if (video.currentTime < limit) return;
    video.pause();
    video.currentTime = limit;
    const note = document.getElementById("preview-note");
    if (note) note.textContent = "试看结束。开通会员即可观看完整视频。";
  });
}
document.addEventListener("DOMContentLoaded", limitPreview);
