"""One module per stage. Each reads the workspace, calls pure code, writes its own outputs.

Convention: `run(ws: Workspace, settings: Settings, job: Job) -> dict` (extract also takes the
video path). A stage calls `ws.begin_stage(name, params, inputs, overwrite)` first, skips
frames whose output file already exists (atomic writes make an existing file a finished one),
reports each frame through `job.tracker(...)`, and ends with `ws.complete_stage(name, ...)`.
"""
