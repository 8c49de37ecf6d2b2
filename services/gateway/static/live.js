// Following one pushed stream (Server-Sent Events) without missing an item.
//
// The stream is opened first and the history read from the read API once it is open, so
// nothing can fall between the two (an item in both arrives twice: the page keeps items by
// id). After a pause, an overflow or a dropped connection it resumes from the last id seen
// (`last_event_id`), so the service sends exactly what was missed. While the stream cannot be
// had (a 404 where the service has none, a 503 while it starts or is full, a 502 while it is
// down), the read API is polled instead, the mode says so, and the stream is tried again
// every little while, less often each time.

export class Feed {
  // stream: the SSE URL; history(): a promise of [type, item] pairs from the read API;
  // types: the event names to listen for; onItem(type, item); onMode(mode) with mode one of
  // "connecting", "stream", "reconnecting", "polling", "paused".
  constructor({ stream, history, types, onItem, onMode, pollMs = 1500 }) {
    Object.assign(this, { stream, history, types, onItem, onMode, pollMs });
    this.lastId = null;
    this.source = null;
    this.timer = null;
    this.retry = null;
    this.retryMs = 2000;
  }

  start() {
    this.#open();
    return this;
  }

  pause() {
    this.#stop();
    this.onMode("paused");
  }

  resume() {
    this.#open();
  }

  close() {
    this.#stop();
  }

  #stop() {
    this.source?.close();
    this.source = null;
    clearInterval(this.timer);
    clearTimeout(this.retry);
    this.timer = this.retry = null;
  }

  #open() {
    this.#stop();
    const resuming = this.lastId !== null;
    const url = new URL(this.stream, location.href);
    if (resuming) url.searchParams.set("last_event_id", this.lastId);
    const source = new EventSource(url);
    this.source = source;
    let opened = false;
    this.onMode(resuming ? "reconnecting" : "connecting");
    source.onopen = () => {
      this.retryMs = 2000;
      this.onMode("stream");
      if (!opened && !resuming) this.#readHistory();
      opened = true;
    };
    for (const type of this.types) {
      source.addEventListener(type, (event) => {
        if (event.lastEventId) this.lastId = event.lastEventId;
        this.onItem(type, JSON.parse(event.data));
      });
    }
    // The service let us go because we fell behind: come back from where we were.
    source.addEventListener("overflow", () => this.#open());
    source.onerror = () => {
      if (source !== this.source) return;
      if (source.readyState === EventSource.CLOSED && !opened) this.#poll();
      else if (source.readyState === EventSource.CLOSED) this.retry = setTimeout(() => this.#open(), 1000);
      else this.onMode("reconnecting"); // the browser retries, sending Last-Event-ID
    };
  }

  async #readHistory() {
    try {
      for (const [type, item] of await this.history()) this.onItem(type, item);
    } catch (error) {
      console.warn("could not read the history", error);
    }
  }

  #poll() {
    this.#stop();
    this.onMode("polling");
    this.#readHistory();
    this.timer = setInterval(() => this.#readHistory(), this.pollMs);
    this.retry = setTimeout(() => this.#open(), this.retryMs);
    this.retryMs = Math.min(this.retryMs * 2, 30000);
  }
}
