"""`btsbot models pull|convert|status`: the model artifacts in the cache."""

from __future__ import annotations

from bot.cli.common import EXIT_FAILED, EXIT_OK, _cache, _load_config, common


def register(sub) -> None:
    models = sub.add_parser("models", help="fetch, verify and convert the model artifacts")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    pull = msub.add_parser("pull", help="fetch + verify the BTSbot model, braai and the example data; convert to ONNX")
    common(pull)
    pull.add_argument("--from", dest="sources", action="append", default=[], metavar="DIR",
                      help="a directory holding the artifacts (checked before $BTSBOT_MODEL_MIRROR and the URLs)")
    pull.add_argument("--force", action="store_true", help="fetch and convert again even if installed")
    pull.add_argument("--offline", action="store_true", help="never download; use --from / $BTSBOT_MODEL_MIRROR only")
    pull.add_argument("--no-convert", action="store_true", help="skip the ONNX conversion")
    pull.add_argument("--no-example-data", action="store_true", help="models only (no int8 model then: it is calibrated on the example data)")
    pull.set_defaults(func=cmd_models_pull)
    conv = msub.add_parser("convert", help="convert the installed models to ONNX (tf2onnx), cached beside them")
    common(conv)
    conv.add_argument("--force", action="store_true", help="convert again even if the conversions are current")
    conv.set_defaults(func=cmd_models_convert)
    status = msub.add_parser("status", help="which artifacts are installed")
    common(status)
    status.set_defaults(func=cmd_models_status)


def cmd_models_pull(args) -> int:
    from bot.artifacts import load_manifest, pull
    from bot.scoring.convert import convert_to_onnx

    cfg = _load_config(args)
    cache = _cache(args, cfg)
    groups = ["models"] + ([] if args.no_example_data else ["example_data"])
    arts = [a for g in groups for a in load_manifest(g)]
    pull(arts, cache, sources=args.sources, allow_url=not args.offline, force=args.force, log=print)
    if not args.no_convert:
        convert_to_onnx(cache, force=args.force, log=print)
    print(f"cache: {cache}")
    return EXIT_OK


def cmd_models_convert(args) -> int:
    from bot.scoring.convert import convert_to_onnx

    convert_to_onnx(_cache(args, _load_config(args)), force=args.force, log=print)
    return EXIT_OK


def cmd_models_status(args) -> int:
    from bot.artifacts import ArtifactError, installed_path, load_manifest

    from bot.scoring.cpu import cpu_marks
    from bot.scoring.int8 import int8_installed
    from bot.scoring.scorer import resolve_backend

    cfg = _load_config(args)
    cache = _cache(args, cfg)
    missing = 0
    for group in ("models", "example_data"):
        for art in load_manifest(group):
            try:
                print(f"ok       {art.label}: {installed_path(art, cache)}")
            except ArtifactError as exc:
                missing += 1
                print(f"missing  {exc}")
    print(f"{'ok' if int8_installed(cache) else 'missing':<8} int8 model (btsbot models convert builds it)")
    marks = cpu_marks()
    chosen, why = resolve_backend(cfg.models.backend, cache)
    print(f"backend  models.backend {cfg.models.backend} -> {chosen} for run/demo: {why} (CPU: {marks})")
    return EXIT_OK if not missing else EXIT_FAILED
