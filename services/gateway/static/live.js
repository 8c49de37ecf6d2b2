// Following one pushed stream (Server-Sent Events) without missing an item.
//
// The stream is opened first and the history read from the read API once it is open, so
// nothing can fall between the two (an item in both arrives twice: the page keeps items by
// id). After a pause, an overflow or a dropped connection it resumes from the last id seen
// (`last_event_id`), so the service sends exactly what was missed. Where the service has no
// stream (it answers 404), the read API is polled instead, and the mode says so.

export class Feed {
  // stream: the SSE URL; history(): a promise of [type, item] pairs from the read API;
  // types: the event names to listen for; onItem(type, item); onMode(mode) with mode one of
  // "connecting", "stream", "reconnecting", "polling", "paused".
  constructor({ stream, history, types, onItem, onMode, pollMs = 1500 }) {
    Object.assign(this, { stream, history, types, onItem, onMode, pollMs });
    this.lastId = null;
    this.source = null;
    this.timer = null;
    this.polling = false;
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
    if (this.polling) this.#poll();
    else this.#open();
  }

  close() {
    this.#stop();
  }

  #stop() {
    this.source?.close();
    this.source = null;
    clearInterval(this.timer);
    this.timer = null;
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
      else if (source.readyState === EventSource.CLOSED) setTimeout(() => this.#open(), 1000);
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
    this.polling = true;
    this.onMode("polling");
    this.#readHistory();
    this.timer = setInterval(() => this.#readHistory(), this.pollMs);
  }
}
