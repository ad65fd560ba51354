class PrefetchQueue: pass
