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

// Console upload: credentials from the site, the file straight to the VOD provider
// (Tencent: one POST with the upload signature), then the status until it is ready.
function watchUpload() {
  const box = document.getElementById("upload");
  if (!box) return;
  const form = document.getElementById("upload-form");
  const say = (text) => { document.getElementById("upload-status").textContent = text; };
  const poll = async () => {
    try {
      const reply = await fetch(box.dataset.statusUrl, { headers: { Accept: "application/json" } });
      const video = reply.ok ? await reply.json() : {};
      document.getElementById("upload-media").textContent = video.media_status || "";
      if (video.media_status === "ready") { say("上传完成, 视频已就绪。"); return; }
    } catch (e) { /* the network blinked: try again */ }
    setTimeout(poll, 1000);
  };
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const file = document.getElementById("upload-file").files[0];
    if (!file) return;
    form.querySelector("button").disabled = true;
    say("正在获取上传凭证…");
    try {
      const asked = await fetch(box.dataset.credentialsUrl, {
        method: "POST",
        headers: { Accept: "application/json" },
        body: new URLSearchParams({ csrf_token: box.dataset.csrf, file_name: file.name }),
      });
      const grant = await asked.json();
      if (!asked.ok) throw new Error(grant.message);
      const creds = grant.credentials;
      if (grant.provider !== "tencent" || !creds.upload_url) throw new Error("该点播服务暂不支持浏览器上传, 请使用管理接口");
      say("正在上传…");
      const sent = await fetch(creds.upload_url, {
        method: "POST",
        headers: { "X-VOD-Signature": creds.signature, "X-VOD-File-Name": encodeURIComponent(file.name) },
        body: file,
      });
      if (!sent.ok) throw new Error(`上传失败 (${sent.status})`);
      say("上传完成, 等待点播服务处理…");
      poll();
    } catch (e) {
      say(e.message || "上传失败");
      form.querySelector("button").disabled = false;
    }
  });
}
document.addEventListener("DOMContentLoaded", watchUpload);
