"""Thin Prefect flows over the mdpipe library: import_contacts, import_messages, sweep_imports."""
