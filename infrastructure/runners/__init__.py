"""Background work of a process, each piece on a supervised thread (`Supervised`: restarted with
back-off when it fails, its state visible in /readyz):

- runners follow the log (`Runner`): a `ProjectionRunner` keeps a read model (rebuildable), a
  policy's runner reacts to events by writing events. A runner holds its worker's lock (one
  runner per worker across processes), feeds it the log in batches, and sleeps until woken by a
  commit or its poll interval. All runners of a process read the log through one `LogTail`;
- the `Sweeper` records lapsed sessions as expired.
"""
