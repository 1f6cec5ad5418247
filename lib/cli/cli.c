/* Command-line conventions: option table parsing, --help, YAML config merging, messages,
 * provenance.  See cli.h. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <yaml.h>

#include "h5guard.h"

#ifndef RCTD_VERSION
#define RCTD_VERSION "0.0.0"
#endif

enum { CLI_OPT_HELP = 100, CLI_OPT_VERSION, CLI_OPT_CONFIG };

/* ------------------------------------------------------------------ parser state */

typedef struct {
  int opt;           /* index into all[] */
  const char *value; /* NULL for a plain flag */
  int negated;       /* --no-NAME */
} cli_setting;

typedef struct {
  rctd_opt *all; /* tool options, then the common ones */
  int n_all;
  char **owned; /* strings to free */
  int n_owned, cap_owned;
  char **args;
  int *config_line; /* per option of all[]: the config file line that set it, 0 = not the file */
} cli_priv;

static char *cli_keep(cli_priv *priv, char *s) {
  if (!s) return NULL;
  if (priv->n_owned == priv->cap_owned) {
    int cap = priv->cap_owned ? 2 * priv->cap_owned : 16;
    char **p = realloc(priv->owned, (size_t)cap * sizeof *p);
    if (!p) {
      free(s);
      return NULL;
    }
    priv->owned = p;
    priv->cap_owned = cap;
  }
  priv->owned[priv->n_owned++] = s;
  return s;
}

void rctd_cli_free(rctd_cli *cli) {
  cli_priv *priv = cli->priv_;
  if (!priv) return;
  for (int i = 0; i < priv->n_owned; i++) free(priv->owned[i]);
  free(priv->owned);
  free(priv->all);
  free(priv->args);
  free(priv->config_line);
  free(priv);
  cli->priv_ = NULL;
  cli->args = NULL;
  cli->n_args = 0;
}

/* The options every tool has, pointing into CLI. */
static int cli_build_table(rctd_cli *cli, cli_priv *priv) {
  int n_tool = 0;
  while (cli->opts && cli->opts[n_tool].name) n_tool++;
  priv->all = calloc((size_t)n_tool + 8, sizeof *priv->all);
  priv->config_line = calloc((size_t)n_tool + 8, sizeof *priv->config_line);
  if (!priv->all || !priv->config_line) return -1;
  for (int i = 0; i < n_tool; i++) priv->all[i] = cli->opts[i];
  int n = n_tool;
  if (cli->has_output)
    priv->all[n++] = (rctd_opt){"output",     'o',   RCTD_OPT_STRING,
                                &cli->output, "-",   "output file ('-' = standard output)",
                                "",           "FILE"};
  if (cli->stream_output)
    priv->all[n++] =
        (rctd_opt){"chunk-rows", 0,
                   RCTD_OPT_I64, &cli->chunk_rows,
                   "0",          "rows per chunk of output streams (0 = automatic, ~1 MiB)",
                   NULL,         "N"};
  priv->all[n++] = (rctd_opt){"threads",     0,   RCTD_OPT_INT,
                              &cli->threads, "0", "worker threads (0 = all online CPUs)",
                              NULL,          "N"};
  priv->all[n++] = (rctd_opt){"quiet",     'q',     RCTD_OPT_FLAG,
                              &cli->quiet, "false", "no progress or informational messages",
                              NULL,        NULL};
  priv->all[n++] = (rctd_opt){"config",
                              0,
                              (rctd_opt_type)CLI_OPT_CONFIG,
                              &cli->config_path,
                              NULL,
                              "read options from a YAML file (command line overrides)",
                              "",
                              "FILE.yaml"};
  priv->all[n++] = (rctd_opt){
      "help", 'h', (rctd_opt_type)CLI_OPT_HELP, NULL, NULL, "show this help and exit", "", NULL};
  priv->all[n++] = (rctd_opt){"version", 'V',  (rctd_opt_type)CLI_OPT_VERSION,
                              NULL,      NULL, "show the version and exit",
                              "",        NULL};
  priv->n_all = n;
  return 0;
}

static int cli_takes_value(const rctd_opt *o) {
  return o->type != RCTD_OPT_FLAG && (int)o->type != CLI_OPT_HELP &&
         (int)o->type != CLI_OPT_VERSION;
}

static const char *cli_metavar(const rctd_opt *o) {
  if (o->metavar) return o->metavar;
  switch ((int)o->type) {
    case RCTD_OPT_INT:
    case RCTD_OPT_I64:
      return "N";
    case RCTD_OPT_DOUBLE:
      return "X";
    default:
      return "STR";
  }
}

/* The YAML key of an option into BUF ("" when it cannot be set from a config file). */
static const char *cli_config_key(const rctd_opt *o, char *buf, size_t len) {
  if (o->config_key) return o->config_key;
  if ((int)o->type >= CLI_OPT_HELP) return "";
  snprintf(buf, len, "%s", o->name);
  for (char *p = buf; *p; p++)
    if (*p == '-') *p = '_';
  return buf;
}

/* ------------------------------------------------------------------ values */

static int cli_parse_bool(const char *s, int *out) {
  static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no",
                                                                              "off"};
  for (int i = 0; i < 4; i++) {
    if (strcasecmp(s, yes[i]) == 0) return *out = 1, 0;
    if (strcasecmp(s, no[i]) == 0) return *out = 0, 0;
  }
  return -1;
}

/* Stores TEXT (which must outlive the cli) into the option.  0 or -1 with a message. */
static int cli_set(const rctd_opt *o, const char *text, char *err, size_t err_len) {
  char *end = NULL;
  errno = 0;
  switch ((int)o->type) {
    case RCTD_OPT_FLAG:
      if (cli_parse_bool(text, (int *)o->dest) == 0) return 0;
      snprintf(err, err_len, "invalid value '%s' (expected true or false)", text);
      return -1;
    case RCTD_OPT_INT: {
      long v = strtol(text, &end, 10);
      if (*text && !*end && !errno && v >= INT_MIN && v <= INT_MAX) {
        *(int *)o->dest = (int)v;
        return 0;
      }
      snprintf(err, err_len, "invalid integer '%s'", text);
      return -1;
    }
    case RCTD_OPT_I64: {
      long long v = strtoll(text, &end, 10);
      if (*text && !*end && !errno) {
        *(int64_t *)o->dest = v;
        return 0;
      }
      snprintf(err, err_len, "invalid integer '%s'", text);
      return -1;
    }
    case RCTD_OPT_DOUBLE: {
      double v = strtod(text, &end);
      if (*text && !*end && !errno && !isnan(v)) {
        *(double *)o->dest = v;
        return 0;
      }
      snprintf(err, err_len, "invalid number '%s'", text);
      return -1;
    }
    case RCTD_OPT_STRING:
    case CLI_OPT_CONFIG:
      *(const char **)o->dest = text;
      return 0;
  }
  snprintf(err, err_len, "option has no value");
  return -1;
}

int rctd_opt_set(const rctd_opt *o, const char *text, char *err, size_t err_len) {
  return cli_set(o, text, err, err_len);
}

/* ------------------------------------------------------------------ usage */

void rctd_cli_usage(const rctd_cli *cli, FILE *f) {
  cli_priv *priv = cli->priv_;
  fprintf(f, "Usage: %s [OPTIONS]%s%s\n", cli->tool, cli->args_usage ? " " : "",
          cli->args_usage ? cli->args_usage : "");
  if (cli->summary) fprintf(f, "%s\n", cli->summary);
  if (cli->description) fprintf(f, "\n%s\n", cli->description);
  fprintf(f, "\nOptions:\n");
  for (int i = 0; priv && i < priv->n_all; i++) {
    const rctd_opt *o = &priv->all[i];
    char left[128];
    int n = o->short_name ? snprintf(left, sizeof left, "  -%c, --%s", o->short_name, o->name)
                          : snprintf(left, sizeof left, "      --%s", o->name);
    if (cli_takes_value(o) && n > 0 && (size_t)n < sizeof left)
      snprintf(left + n, sizeof left - (size_t)n, " %s", cli_metavar(o));
    fprintf(f, "%-28s%s%s", left, strlen(left) >= 28 ? "\n                            " : "",
            o->help ? o->help : "");
    if (o->default_value && (int)o->type < CLI_OPT_HELP)
      fprintf(f, " [default: %s]", o->default_value);
    if (o->config_key && *o->config_key) fprintf(f, " (config key: %s)", o->config_key);
    fprintf(f, "\n");
  }
  fprintf(f,
          "\nA config file is a YAML mapping of option names (with '_' for '-') to values.\n"
          "Exit status: 0 success, 1 runtime error, 2 usage error.\n");
}

int rctd_cli_usage_error(const rctd_cli *cli, const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s: %s\nTry '%s --help' for more information.\n", cli->tool, msg, cli->tool);
  return RCTD_EXIT_USAGE;
}

/* ------------------------------------------------------------------ command line */

static int cli_find_long(const cli_priv *priv, const char *name, size_t len) {
  for (int i = 0; i < priv->n_all; i++)
    if (strlen(priv->all[i].name) == len && strncmp(priv->all[i].name, name, len) == 0) return i;
  return -1;
}

static int cli_find_short(const cli_priv *priv, char c) {
  for (int i = 0; i < priv->n_all; i++)
    if (priv->all[i].short_name == c) return i;
  return -1;
}

/* Splits argv into settings and positional arguments.  0, or -1 with a message. */
/* Splits argv into settings and positional arguments.  Scans to the end even after an
 * error (so that a later --help still counts); 0, or -1 with the first problem in err. */
static int cli_scan(cli_priv *priv, int argc, char **argv, cli_setting *settings, int *n_settings,
                    int *n_args, char *err, size_t err_len) {
  int only_args = 0, failed = 0;
#define CLI_SCAN_FAIL(...)                            \
  do {                                                \
    if (!failed) snprintf(err, err_len, __VA_ARGS__); \
    failed = 1;                                       \
  } while (0)
  for (int i = 1; i < argc; i++) {
    char *a = argv[i];
    if (only_args || a[0] != '-' || a[1] == 0) {
      priv->args[(*n_args)++] = a;
      continue;
    }
    if (strcmp(a, "--") == 0) {
      only_args = 1;
      continue;
    }
    if (a[1] == '-') {
      const char *name = a + 2, *eq = strchr(name, '=');
      size_t len = eq ? (size_t)(eq - name) : strlen(name);
      int k = cli_find_long(priv, name, len), negated = 0;
      if (k < 0 && len > 3 && strncmp(name, "no-", 3) == 0) {
        k = cli_find_long(priv, name + 3, len - 3);
        negated = k >= 0 && priv->all[k].type == RCTD_OPT_FLAG;
        if (!negated) k = -1;
      }
      if (k < 0) {
        CLI_SCAN_FAIL("unknown option '--%.*s'", (int)len, name);
        continue;
      }
      const char *value = eq ? eq + 1 : NULL;
      if (!cli_takes_value(&priv->all[k])) {
        if (value && (negated || priv->all[k].type != RCTD_OPT_FLAG)) {
          CLI_SCAN_FAIL("option '--%.*s' takes no value", (int)len, name);
          continue;
        }
      } else if (!value) {
        if (i + 1 >= argc) {
          CLI_SCAN_FAIL("option '--%s' needs a value", priv->all[k].name);
          continue;
        }
        value = argv[++i];
      }
      settings[(*n_settings)++] = (cli_setting){k, value, negated};
      continue;
    }
    /* Short options: flags may be grouped (-qV); a value follows attached or as next arg. */
    for (const char *p = a + 1; *p; p++) {
      int k = cli_find_short(priv, *p);
      if (k < 0) {
        CLI_SCAN_FAIL("unknown option '-%c'", *p);
        break;
      }
      if (!cli_takes_value(&priv->all[k])) {
        settings[(*n_settings)++] = (cli_setting){k, NULL, 0};
        continue;
      }
      const char *value = p[1] ? p + 1 : NULL;
      if (!value) {
        if (i + 1 >= argc) {
          CLI_SCAN_FAIL("option '-%c' needs a value", *p);
          break;
        }
        value = argv[++i];
      }
      settings[(*n_settings)++] = (cli_setting){k, value, 0};
      break;
    }
  }
#undef CLI_SCAN_FAIL
  return failed ? -1 : 0;
}

/* ------------------------------------------------------------------ YAML config */

/* A key path and its scalar value from the config file. */
typedef struct {
  char *key;
  char *value; /* NULL for a YAML null */
  int line;
} cli_cfg_entry;

typedef struct {
  cli_cfg_entry *items;
  int n, cap;
} cli_cfg;

static void cli_cfg_free(cli_cfg *cfg) {
  for (int i = 0; i < cfg->n; i++) {
    free(cfg->items[i].key);
    free(cfg->items[i].value);
  }
  free(cfg->items);
}

static int cli_cfg_add(cli_cfg *cfg, char *key, const yaml_event_t *ev) {
  if (cfg->n == cfg->cap) {
    int cap = cfg->cap ? 2 * cfg->cap : 16;
    cli_cfg_entry *p = realloc(cfg->items, (size_t)cap * sizeof *p);
    if (!p) return -1;
    cfg->items = p;
    cfg->cap = cap;
  }
  const char *v = (const char *)ev->data.scalar.value;
  int is_null = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                (!*v || strcmp(v, "~") == 0 || strcasecmp(v, "null") == 0);
  char *value = is_null ? NULL : strdup(v);
  if (!is_null && !value) return -1;
  cfg->items[cfg->n++] = (cli_cfg_entry){key, value, (int)ev->start_mark.line + 1};
  return 0;
}

static int cli_yaml_next(yaml_parser_t *p, yaml_event_t *ev, char *err, size_t err_len) {
  if (yaml_parser_parse(p, ev)) return 0;
  snprintf(err, err_len, "line %d: invalid YAML: %s", (int)p->problem_mark.line + 1,
           p->problem ? p->problem : "parse error");
  return -1;
}

/* Reads a mapping's entries (its MAPPING_START was consumed) into cfg, keys joined by '.'. */
static int cli_yaml_mapping(yaml_parser_t *p, const char *prefix, cli_cfg *cfg, char *err,
                            size_t err_len, int depth) {
  if (depth > 16) {
    snprintf(err, err_len, "mappings nested too deeply");
    return -1;
  }
  for (;;) {
    yaml_event_t kev, vev;
    if (cli_yaml_next(p, &kev, err, err_len) != 0) return -1;
    if (kev.type == YAML_MAPPING_END_EVENT) {
      yaml_event_delete(&kev);
      return 0;
    }
    if (kev.type != YAML_SCALAR_EVENT) {
      snprintf(err, err_len, "line %d: keys must be plain names", (int)kev.start_mark.line + 1);
      yaml_event_delete(&kev);
      return -1;
    }
    const char *k = (const char *)kev.data.scalar.value;
    size_t len = strlen(k) + (prefix ? strlen(prefix) + 1 : 0) + 1;
    char *key = malloc(len);
    if (!key) {
      yaml_event_delete(&kev);
      snprintf(err, err_len, "out of memory");
      return -1;
    }
    snprintf(key, len, "%s%s%s", prefix ? prefix : "", prefix ? "." : "", k);
    int line = (int)kev.start_mark.line + 1;
    yaml_event_delete(&kev);
    if (cli_yaml_next(p, &vev, err, err_len) != 0) {
      free(key);
      return -1;
    }
    int rc = 0;
    if (vev.type == YAML_SCALAR_EVENT) {
      if (cli_cfg_add(cfg, key, &vev) != 0) {
        snprintf(err, err_len, "out of memory");
        rc = -1;
        free(key);
      }
      key = NULL; /* owned by cfg */
    } else if (vev.type == YAML_MAPPING_START_EVENT) {
      rc = cli_yaml_mapping(p, key, cfg, err, err_len, depth + 1);
    } else {
      snprintf(err, err_len, "line %d: key '%s': %s are not supported (expected a single value)",
               line, key, vev.type == YAML_SEQUENCE_START_EVENT ? "lists" : "aliases");
      rc = -1;
    }
    free(key);
    yaml_event_delete(&vev);
    if (rc != 0) return -1;
  }
}

/* Parses PATH into a flat key/value list.  0, or -1 with a message (without the path). */
static int cli_yaml_load(const char *path, cli_cfg *cfg, char *err, size_t err_len) {
  FILE *f = fopen(path, "rb");
  if (!f) {
    snprintf(err, err_len, "cannot open: %s", strerror(errno));
    return -1;
  }
  yaml_parser_t p;
  if (!yaml_parser_initialize(&p)) {
    fclose(f);
    snprintf(err, err_len, "out of memory");
    return -1;
  }
  yaml_parser_set_input_file(&p, f);
  int rc = 0, docs = 0;
  for (;;) {
    yaml_event_t ev;
    if (cli_yaml_next(&p, &ev, err, err_len) != 0) {
      rc = -1;
      break;
    }
    yaml_event_type_t type = ev.type;
    int line = (int)ev.start_mark.line + 1;
    int empty_scalar = type == YAML_SCALAR_EVENT && ev.data.scalar.length == 0;
    yaml_event_delete(&ev);
    if (type == YAML_STREAM_END_EVENT) break;
    if (type == YAML_STREAM_START_EVENT || type == YAML_DOCUMENT_END_EVENT || empty_scalar)
      continue;
    if (type == YAML_DOCUMENT_START_EVENT) {
      if (++docs > 1) {
        snprintf(err, err_len, "line %d: more than one YAML document", line);
        rc = -1;
        break;
      }
      continue;
    }
    if (type != YAML_MAPPING_START_EVENT) {
      snprintf(err, err_len, "line %d: expected a mapping of option names to values", line);
      rc = -1;
      break;
    }
    if (cli_yaml_mapping(&p, NULL, cfg, err, err_len, 0) != 0) {
      rc = -1;
      break;
    }
  }
  yaml_parser_delete(&p);
  fclose(f);
  return rc;
}

/* Applies the config file entries to the options. */
static int cli_apply_config(rctd_cli *cli, cli_priv *priv) {
  cli_cfg cfg = {0};
  char err[1024], key[128];
  const char *path = cli->config_path;
  if (cli_yaml_load(path, &cfg, err, sizeof err) != 0) {
    rctd_log_error("%s: %s", path, err);
    cli_cfg_free(&cfg);
    return -1;
  }
  int rc = 0;
  for (int i = 0; i < cfg.n && rc == 0; i++) {
    const cli_cfg_entry *e = &cfg.items[i];
    int k = -1;
    for (int j = 0; j < priv->n_all && k < 0; j++) {
      const char *ck = cli_config_key(&priv->all[j], key, sizeof key);
      if (*ck && strcmp(ck, e->key) == 0) k = j;
    }
    if (k < 0) {
      char valid[2048] = "";
      size_t used = 0;
      for (int j = 0; j < priv->n_all; j++) {
        const char *ck = cli_config_key(&priv->all[j], key, sizeof key);
        if (!*ck) continue;
        int n = snprintf(valid + used, sizeof valid - used, "%s%s", used ? ", " : "", ck);
        if (n < 0 || (size_t)n >= sizeof valid - used) break;
        used += (size_t)n;
      }
      rctd_log_error("%s: line %d: unknown key '%s' (valid keys: %s)", path, e->line, e->key,
                     valid);
      rc = -1;
      break;
    }
    const rctd_opt *o = &priv->all[k];
    for (int j = 0; j < i; j++)
      if (strcmp(cfg.items[j].key, e->key) == 0) {
        rctd_log_error("%s: line %d: key '%s' is given twice (also on line %d): keep one", path,
                       e->line, e->key, cfg.items[j].line);
        rc = -1;
        break;
      }
    if (rc != 0) break;
    /* A null (`key:` or `key: ~`) is refused for every option alike: leave the line out to
     * keep the default. */
    if (!e->value) {
      rctd_log_error(
          "%s: line %d: key '%s' has no value: give one, or remove the line to keep "
          "the default",
          path, e->line, e->key);
      rc = -1;
      break;
    }
    if (priv->config_line) priv->config_line[k] = e->line;
    char *value = cli_keep(priv, strdup(e->value));
    if (!value) {
      rctd_log_error("%s: out of memory", path);
      rc = -1;
      break;
    }
    if (cli_set(o, value, err, sizeof err) != 0) {
      rctd_log_error("%s: line %d: key '%s': %s", path, e->line, e->key, err);
      rc = -1;
    }
  }
  cli_cfg_free(&cfg);
  return rc;
}

/* ------------------------------------------------------------------ parse */

int rctd_cli_parse(rctd_cli *cli, int argc, char **argv) {
  rctd_set_tool(cli->tool);
  rctd_out_install_handlers();
  rctd_h5_no_teardown_at_exit();
  cli->argc = argc;
  cli->argv = argv;
  cli->config_path = NULL;
  cli->output = "-";
  cli_priv *priv = calloc(1, sizeof *priv);
  /* Grouped short flags (-qs) give several settings per argument: one per character at most. */
  size_t max_settings = 1;
  for (int i = 1; i < argc; i++) max_settings += strlen(argv[i]) + 1;
  cli_setting *settings = calloc(max_settings, sizeof *settings);
  if (!priv || !settings || !(priv->args = calloc((size_t)argc + 1, sizeof *priv->args)) ||
      cli_build_table(cli, priv) != 0) {
    if (priv) free(priv->args);
    free(priv);
    free(settings);
    rctd_log_error("out of memory");
    return RCTD_EXIT_RUNTIME;
  }
  cli->priv_ = priv;
  cli->args = priv->args;
  int n_settings = 0, n_args = 0, rc = RCTD_CLI_CONTINUE;
  char err[1024];
  int scan_rc = cli_scan(priv, argc, argv, settings, &n_settings, &n_args, err, sizeof err);
  /* --help and --version win over everything else, errors included. */
  for (int i = 0; i < n_settings && rc == RCTD_CLI_CONTINUE; i++) {
    int type = (int)priv->all[settings[i].opt].type;
    if (type == CLI_OPT_HELP) {
      rctd_cli_usage(cli, stdout);
      rc = RCTD_EXIT_OK;
    } else if (type == CLI_OPT_VERSION) {
      printf("%s %s\n", cli->tool, RCTD_VERSION);
      rc = RCTD_EXIT_OK;
    }
  }
  if (rc == RCTD_CLI_CONTINUE && scan_rc != 0) rc = rctd_cli_usage_error(cli, "%s", err);
  /* Defaults, then the config file, then the command line. */
  for (int i = 0; i < priv->n_all && rc == RCTD_CLI_CONTINUE; i++) {
    const rctd_opt *o = &priv->all[i];
    if ((int)o->type >= CLI_OPT_HELP) continue;
    if (!o->default_value) {
      if (o->type == RCTD_OPT_STRING) *(const char **)o->dest = NULL;
      continue;
    }
    if (cli_set(o, o->default_value, err, sizeof err) != 0)
      rc = rctd_cli_usage_error(cli, "default of --%s: %s", o->name, err);
  }
  for (int i = 0; i < n_settings && rc == RCTD_CLI_CONTINUE; i++)
    if ((int)priv->all[settings[i].opt].type == CLI_OPT_CONFIG)
      cli->config_path = settings[i].value;
  if (rc == RCTD_CLI_CONTINUE && cli->config_path && cli_apply_config(cli, priv) != 0)
    rc = RCTD_EXIT_USAGE;
  for (int i = 0; i < n_settings && rc == RCTD_CLI_CONTINUE; i++) {
    const cli_setting *s = &settings[i];
    const rctd_opt *o = &priv->all[s->opt];
    if ((int)o->type == CLI_OPT_CONFIG) continue;
    const char *value = s->value ? s->value : s->negated ? "false" : "true";
    priv->config_line[s->opt] = 0; /* the command line wins */
    if (cli_set(o, value, err, sizeof err) != 0)
      rc = rctd_cli_usage_error(cli, "option --%s: %s", o->name, err);
  }
  free(settings);
  cli->n_args = n_args;
  if (rc == RCTD_CLI_CONTINUE && n_args < cli->min_args)
    rc = rctd_cli_usage_error(cli, "missing argument (usage: %s [OPTIONS] %s)", cli->tool,
                              cli->args_usage ? cli->args_usage : "");
  if (rc == RCTD_CLI_CONTINUE && cli->max_args >= 0 && n_args > cli->max_args)
    rc = rctd_cli_usage_error(cli, "unexpected argument '%s'", cli->args[cli->max_args]);
  if (rc == RCTD_CLI_CONTINUE && cli->threads < 0)
    rc = rctd_cli_usage_error(cli, "option --threads: must be 0 or more");
  if (rc == RCTD_CLI_CONTINUE && cli->has_output && !*cli->output)
    rc = rctd_cli_usage_error(cli,
                              "option -o: the path is empty: give a file name, or - for "
                              "standard output");
  if (rc == RCTD_CLI_CONTINUE && cli->chunk_rows < 0)
    rc = rctd_cli_usage_error(cli, "option --chunk-rows: must be 0 or more");
  if (rc == RCTD_CLI_CONTINUE && cli->threads == 0) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cli->threads = n > 0 ? (int)n : 1;
  }
  rctd_set_quiet(cli->quiet);
  /* A tool that stops here (help, version, usage error) has nothing left to free. */
  if (rc != RCTD_CLI_CONTINUE) rctd_cli_free(cli);
  return rc;
}

rctd_writer_opts rctd_cli_writer_opts(const rctd_cli *cli) {
  rctd_writer_opts opts = {0};
  opts.chunk_rows = cli->chunk_rows > 0 ? (uint64_t)cli->chunk_rows : 0;
  return opts;
}

/* ------------------------------------------------------------------ provenance */

/* Appends ARG to the buffer, single-quoted for a POSIX shell when needed. */
static int cli_quote_append(char **buf, size_t *len, size_t *cap, const char *arg) {
  int plain = *arg != 0;
  for (const char *p = arg; *p && plain; p++)
    plain = isalnum((unsigned char)*p) || strchr("_-./=:,+@%", *p);
  size_t need = *len + 4 * strlen(arg) + 4;
  if (need > *cap) {
    size_t n = need * 2;
    char *p = realloc(*buf, n);
    if (!p) return -1;
    *buf = p;
    *cap = n;
  }
  char *out = *buf + *len;
  if (*len) *out++ = ' ';
  if (!plain) *out++ = '\'';
  for (const char *p = arg; *p; p++) {
    if (*p == '\'' && !plain) {
      memcpy(out, "'\\''", 4);
      out += 4;
    } else {
      *out++ = *p;
    }
  }
  if (!plain) *out++ = '\'';
  *out = 0;
  *len = (size_t)(out - *buf);
  return 0;
}

/* Options that cannot change a tool's results: left out of the provenance, so that output
 * bytes do not depend on them either.  Returns how many arguments ARG consumes (0: keep it). */
static int cli_provenance_skip(const char *arg) {
  if (strcmp(arg, "--threads") == 0) return 2;
  if (strncmp(arg, "--threads=", 10) == 0 || strcmp(arg, "--quiet") == 0 ||
      strcmp(arg, "-q") == 0 || strcmp(arg, "--no-quiet") == 0)
    return 1;
  return 0;
}

int rctd_cli_write_provenance(const rctd_cli *cli, rctd_writer *w) {
  char *line = NULL;
  size_t len = 0, cap = 0;
  for (int i = 0; i < cli->argc; i++) {
    int skip = i > 0 ? cli_provenance_skip(cli->argv[i]) : 0;
    if (skip) {
      i += skip - 1;
      continue;
    }
    if (cli_quote_append(&line, &len, &cap, cli->argv[i]) != 0) {
      free(line);
      return -1;
    }
  }
  char name[256];
  snprintf(name, sizeof name, "provenance.%s", cli->tool);
  const char *keys[4] = {"tool", "version", "command_line", "config"};
  const char *values[4] = {cli->tool, RCTD_VERSION, line ? line : "", cli->config_path};
  int rc = rctd_write_meta(w, name, keys, values, cli->config_path ? 4 : 3);
  free(line);
  return rc;
}

int rctd_cli_config_line(const rctd_cli *cli, const void *dest) {
  const cli_priv *priv = cli->priv_;
  if (!priv || !priv->config_line) return 0;
  for (int i = 0; i < priv->n_all; i++)
    if (priv->all[i].dest == dest) return priv->config_line[i];
  return 0;
}

static int cli_provenance_write(const rctd_provenance *p, rctd_writer *w) {
  return rctd_cli_write_provenance(p->ctx, w);
}

rctd_provenance rctd_cli_provenance(const rctd_cli *cli) {
  return (rctd_provenance){cli->tool, cli_provenance_write, cli};
}
