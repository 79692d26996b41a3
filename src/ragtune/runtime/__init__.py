"""The runtime: plan and build, and (later) the request pipeline."""
