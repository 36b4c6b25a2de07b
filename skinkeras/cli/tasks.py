"""`skinkeras tasks`: the registered tasks (systems) and the parts each one implements."""

from __future__ import annotations


def register(subparsers) -> None:
    parser = subparsers.add_parser("tasks", help="the registered tasks and what each implements")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.set_defaults(func=run)


def run(args) -> int:
    import json

    from skinkeras.tasks import ROLES, all_tasks

    rows = []
    for task in all_tasks():
        rows.append({"name": task.name, "summary": task.summary, "module": task.module,
                     "config_section": task.config.__name__ if task.config else None, "element": task.element,
                     "parts": [role for role in ROLES if task.has(role)]})
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['summary']}")
        section = f"section {r['name']}: {r['config_section']}" if r["config_section"] else "no section of its own"
        print(f"{'':<{width}}  {section}; parts: {', '.join(r['parts'])}")
    return 0
