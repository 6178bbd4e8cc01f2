// llcheck: run a GGUF model through a prebuilt llama.cpp (libllama.so from the npm package
// @node-llama-cpp/linux-x64) and compare its last-position logits with TileLab's.
//
//   llcheck -m MODEL.gguf -L LIBDIR --tokens 1,2,3 [--prompt-file F] [--ours OURS.f32] [-o OUT.f32]
//           [-t THREADS] [--kv f32|f16] [-v]
//
// It prints key=value lines (see the end of main) that scripts/llamacpp-check.sh parses.
//
// No llama.cpp headers ship with the npm package, so the few declarations used are written out here from the
// public C API of llama.cpp (include/llama.h). Structs passed by value (model and context parameters) are
// declared with the layout of the llama.cpp revision the package was built from (0ad4a86, read from its
// llama_*_default_params code); because a
// layout mismatch would silently misconfigure the run, the defaults the library returns are checked against
// the values that layout implies before any field is changed, and the run stops if they disagree.
#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef int32_t llama_token;
typedef int32_t llama_pos;
typedef int32_t llama_seq_id;

struct llama_model;
struct llama_context;
struct llama_vocab;

// llama_model_params. Recent llama.cpp replaced the use_mmap/use_mlock/use_direct_io booleans with load_mode
// and added lazy_mode; the booleans sit together at the end.
struct model_params {
	void *devices;
	const void *tensor_buft_overrides;
	int32_t n_gpu_layers;
	int32_t split_mode;
	int32_t load_mode; // -1 auto
	int32_t lazy_mode;
	int32_t main_gpu;
	const float *tensor_split;
	void *progress_callback;
	void *progress_callback_user_data;
	const void *kv_overrides;
	bool vocab_only, check_tensors, use_extra_bufts, no_host, no_alloc, load_mtp;
	// Slack, so that a library whose struct grew at the end still writes into our memory, not past it.
	unsigned char slack[256];
};

// llama_context_params, as far as the fields this program reads or sets.
struct context_params {
	uint32_t n_ctx, n_batch, n_ubatch, n_seq_max, n_rs_seq, n_outputs_max, n_outputs_max_per_seq;
	int32_t n_threads, n_threads_batch;
	int32_t ctx_type, rope_scaling_type, pooling_type, attention_type, flash_attn_type;
	float rope_freq_base, rope_freq_scale, yarn_ext_factor, yarn_attn_factor, yarn_beta_fast, yarn_beta_slow;
	uint32_t yarn_orig_ctx;
	float defrag_thold;
	void *cb_eval, *cb_eval_user_data;
	int32_t type_k, type_v; // enum ggml_type: 0 F32, 1 F16
	void *abort_callback, *abort_callback_data;
	bool embeddings, offload_kqv, no_perf, op_offload, swa_full, kv_unified;
	void *samplers;
	size_t n_samplers;
	unsigned char slack[256];
};

// llama_batch has kept this layout since the batch API appeared.
struct batch {
	int32_t n_tokens;
	llama_token *token;
	float *embd;
	llama_pos *pos;
	int32_t *n_seq_id;
	llama_seq_id **seq_id;
	int8_t *logits;
};

// The library's entry points, resolved with dlsym so that the program builds without any llama.cpp file.
static struct {
	void (*backend_init)(void);
	void (*backend_free)(void);
	void (*log_set)(void (*cb)(int level, const char *text, void *ud), void *ud);
	struct model_params (*model_default_params)(void);
	struct context_params (*context_default_params)(void);
	struct llama_model *(*model_load_from_file)(const char *path, struct model_params p);
	void (*model_free)(struct llama_model *);
	struct llama_context *(*init_from_model)(struct llama_model *, struct context_params p);
	void (*free_ctx)(struct llama_context *);
	const struct llama_vocab *(*model_get_vocab)(const struct llama_model *);
	int32_t (*vocab_n_tokens)(const struct llama_vocab *);
	bool (*vocab_get_add_bos)(const struct llama_vocab *);
	int32_t (*vocab_type)(const struct llama_vocab *);
	int32_t (*tokenize)(const struct llama_vocab *, const char *text, int32_t len, llama_token *out, int32_t n_max,
			    bool add_special, bool parse_special);
	struct batch (*batch_get_one)(llama_token *tokens, int32_t n);
	int32_t (*decode)(struct llama_context *, struct batch b);
	float *(*get_logits_ith)(struct llama_context *, int32_t i);
	void (*set_n_threads)(struct llama_context *, int32_t n, int32_t n_batch);
	int32_t (*model_desc)(const struct llama_model *, char *buf, size_t size);
	int32_t (*meta_val_str)(const struct llama_model *, const char *key, char *buf, size_t size);
	void (*backend_load_all_from_path)(const char *dir);
	// ggml, for LLCHECK_DUMP
	const char *(*tensor_name)(const void *t);
	size_t (*tensor_nbytes)(const void *t);
	void (*tensor_get)(const void *t, void *data, size_t offset, size_t size);
} L;

static void die(const char *fmt, const char *arg) {
	fprintf(stderr, "llcheck: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n");
	exit(2);
}

static void *sym(void *lib, const char *name) {
	void *p = dlsym(lib, name);
	if (!p)
		die("libllama has no symbol %s", name);
	return p;
}

static void load_library(const char *dir) {
	char path[4096];
	snprintf(path, sizeof path, "%s/libggml.v0.5.0.so", dir);
	void *ggml = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (!ggml)
		die("cannot open libggml: %s", dlerror());
	snprintf(path, sizeof path, "%s/libllama.v0.5.0.so", dir);
	void *lib = dlopen(path, RTLD_NOW | RTLD_GLOBAL);
	if (!lib)
		die("cannot open libllama: %s", dlerror());
	*(void **)&L.backend_load_all_from_path = sym(ggml, "ggml_backend_load_all_from_path");
	*(void **)&L.tensor_name = sym(ggml, "ggml_get_name");
	*(void **)&L.tensor_nbytes = sym(ggml, "ggml_nbytes");
	*(void **)&L.tensor_get = sym(ggml, "ggml_backend_tensor_get");
	*(void **)&L.backend_init = sym(lib, "llama_backend_init");
	*(void **)&L.backend_free = sym(lib, "llama_backend_free");
	*(void **)&L.log_set = sym(lib, "llama_log_set");
	*(void **)&L.model_default_params = sym(lib, "llama_model_default_params");
	*(void **)&L.context_default_params = sym(lib, "llama_context_default_params");
	*(void **)&L.model_load_from_file = sym(lib, "llama_model_load_from_file");
	*(void **)&L.model_free = sym(lib, "llama_model_free");
	*(void **)&L.init_from_model = sym(lib, "llama_init_from_model");
	*(void **)&L.free_ctx = sym(lib, "llama_free");
	*(void **)&L.model_get_vocab = sym(lib, "llama_model_get_vocab");
	*(void **)&L.vocab_n_tokens = sym(lib, "llama_vocab_n_tokens");
	*(void **)&L.vocab_get_add_bos = sym(lib, "llama_vocab_get_add_bos");
	*(void **)&L.vocab_type = sym(lib, "llama_vocab_type");
	*(void **)&L.tokenize = sym(lib, "llama_tokenize");
	*(void **)&L.batch_get_one = sym(lib, "llama_batch_get_one");
	*(void **)&L.decode = sym(lib, "llama_decode");
	*(void **)&L.get_logits_ith = sym(lib, "llama_get_logits_ith");
	*(void **)&L.set_n_threads = sym(lib, "llama_set_n_threads");
	*(void **)&L.model_desc = sym(lib, "llama_model_desc");
	*(void **)&L.meta_val_str = sym(lib, "llama_model_meta_val_str");
	// The package builds ggml's CPU backend as one library per instruction set; the loader picks the best.
	L.backend_load_all_from_path(dir);
}

// Log lines are kept and shown only on failure (or with -v): a loader's warnings explain a failed load.
static bool verbose;
static char logbuf[1 << 16];
static size_t loglen;

static void log_cb(int level, const char *text, void *ud) {
	(void)ud;
	if (verbose) {
		fputs(text, stderr);
		return;
	}
	(void)level;
	size_t n = strlen(text);
	if (loglen + n >= sizeof logbuf) // keep the latest lines: they say why a load failed
		loglen = 0;
	memcpy(logbuf + loglen, text, n);
	loglen += n;
	logbuf[loglen] = 0;
}

static void fail(const char *what) {
	if (!verbose && loglen)
		fprintf(stderr, "--- llama.cpp log (tail) ---\n%s--- end of log ---\n", logbuf);
	die("%s", what);
}

// The eval callback sees every tensor the graph computes. It serves two purposes:
//  - the router margin of MoE models: for each layer's router probabilities (ffn_moe_probs-L, n_expert x
//    n_tokens), the gap in log-probability between the k-th and (k+1)-th expert of each token. A tiny gap means
//    the expert choice flips under noise as small as activation quantization, and the logits then legitimately
//    differ by far more than quantization noise; the driver reports that instead of calling it a disagreement.
//  - LLCHECK_DUMP=DIR writes every float32 tensor as DIR/NNN-NAME.f32 (NNN: evaluation order), for finding
//    where a disagreement starts.
// ggml_tensor begins with its type (enum ggml_type, F32 = 0) and, after the buffer pointer, ne[4]; that prefix
// has not changed in years.
static const char *dump_dir;
static int dump_seq;
static int n_expert_used;
static double router_margin = INFINITY;
static int router_layer = -1, router_token = -1, router_layers_seen;
static double router_last_margin = INFINITY; // the last token's alone: it feeds the compared logits directly
static int router_last_layer = -1;

static void router(const char *name, const float *p, int64_t n_expert, int64_t n_tokens) {
	int layer = atoi(name + strlen("ffn_moe_probs-"));
	router_layers_seen++;
	if (n_expert_used <= 0 || n_expert_used >= n_expert)
		return;
	for (int64_t t = 0; t < n_tokens; t++) {
		const float *row = p + t * n_expert;
		// k-th and (k+1)-th largest by partial selection: n_expert is small.
		float top[2] = {0, 0};
		char used[1024] = {0};
		if (n_expert > 1024)
			return;
		for (int r = 0; r <= n_expert_used; r++) {
			int best = -1;
			for (int64_t e = 0; e < n_expert; e++)
				if (!used[e] && (best < 0 || row[e] > row[best]))
					best = (int)e;
			used[best] = 1;
			if (r >= n_expert_used - 1)
				top[r - (n_expert_used - 1)] = row[best];
		}
		double gap = log(top[0]) - log(top[1]);
		if (t == n_tokens - 1 && gap < router_last_margin) {
			router_last_margin = gap;
			router_last_layer = layer;
		}
		if (gap < router_margin) {
			router_margin = gap;
			router_layer = layer;
			router_token = (int)t;
		}
	}
}

static bool eval_cb(void *t, bool ask, void *ud) {
	(void)ud;
	const char *name = L.tensor_name(t);
	bool probs = !strncmp(name, "ffn_moe_probs-", 14);
	if (ask)
		return dump_dir || probs;
	int32_t type = *(const int32_t *)t;
	const int64_t *ne = (const int64_t *)((const char *)t + 16);
	if (type != 0)
		return true;
	size_t nb = L.tensor_nbytes(t);
	if (nb != (size_t)(ne[0] * ne[1] * ne[2] * ne[3] * 4)) // a view with gaps: skip rather than guess
		return true;
	float *buf = malloc(nb);
	L.tensor_get(t, buf, 0, nb);
	if (probs)
		router(name, buf, ne[0], ne[1]);
	if (dump_dir) {
		char path[4096];
		snprintf(path, sizeof path, "%s/%03d-%s.f32", dump_dir, dump_seq++, name);
		for (char *c = path + strlen(dump_dir) + 1; *c; c++)
			if (*c == '/' || *c == ' ')
				*c = '_';
		FILE *f = fopen(path, "wb");
		if (f) {
			fwrite(buf, 1, nb, f);
			fclose(f);
		}
	}
	free(buf);
	return true;
}

static int parse_ids(const char *s, llama_token *out, int max) {
	int n = 0;
	while (*s) {
		char *end;
		errno = 0;
		long v = strtol(s, &end, 10);
		if (end == s || errno || v < 0 || v > INT32_MAX || n >= max)
			die("bad token list near %s", s);
		out[n++] = (llama_token)v;
		s = end;
		while (*s == ',' || *s == ' ')
			s++;
	}
	return n;
}

static char *read_file(const char *path, size_t *len) {
	FILE *f = fopen(path, "rb");
	if (!f)
		die("cannot open %s", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	char *b = malloc(n + 1);
	if (!b || fread(b, 1, n, f) != (size_t)n)
		die("cannot read %s", path);
	fclose(f);
	b[n] = 0;
	*len = n;
	return b;
}

static int argmax(const float *v, int n) {
	int best = 0;
	for (int i = 1; i < n; i++)
		if (v[i] > v[best])
			best = i;
	return best;
}

int main(int argc, char **argv) {
	const char *model = NULL, *libdir = NULL, *tokens = NULL, *prompt_file = NULL, *ours = NULL, *out = NULL;
	const char *kv = "f32";
	int threads = 2;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!strcmp(a, "-v")) {
			verbose = true;
			continue;
		}
		if (!v)
			die("%s needs a value", a);
		i++;
		if (!strcmp(a, "-m"))
			model = v;
		else if (!strcmp(a, "-L"))
			libdir = v;
		else if (!strcmp(a, "--tokens"))
			tokens = v;
		else if (!strcmp(a, "--prompt-file"))
			prompt_file = v;
		else if (!strcmp(a, "--ours"))
			ours = v;
		else if (!strcmp(a, "-o"))
			out = v;
		else if (!strcmp(a, "-t"))
			threads = atoi(v);
		else if (!strcmp(a, "--kv"))
			kv = v;
		else
			die("unknown flag %s", a);
	}
	if (!model || !libdir || (!tokens && !prompt_file))
		die("%s", "usage: llcheck -m MODEL -L LIBDIR (--tokens IDS | --prompt-file F) [--ours F] [-o F] [-t N] [--kv f32|f16] [-v]");
	if (strcmp(kv, "f32") && strcmp(kv, "f16"))
		die("--kv must be f32 or f16, not %s", kv);

	load_library(libdir);
	L.log_set(log_cb, NULL);
	L.backend_init();

	struct model_params mp = L.model_default_params();
	// Expected defaults of this layout; anything else means the struct is not what we think it is.
	if (mp.devices || mp.n_gpu_layers != -1 || mp.split_mode != 1 || mp.load_mode != -1 || mp.main_gpu != 0 ||
	    mp.tensor_split || mp.kv_overrides || mp.vocab_only || mp.check_tensors || !mp.use_extra_bufts ||
	    mp.no_host || mp.no_alloc || mp.load_mtp)
		die("%s", "llama_model_params defaults do not match the expected layout (wrong llama.cpp version?)");
	mp.check_tensors = true; // llama.cpp validates every tensor's data (NaN, Inf, block scales) while loading
	if (getenv("LLCHECK_NO_REPACK"))
		mp.use_extra_bufts = false; // keep ggml's plain Q4_0/Q8_0 kernels rather than its repacked layouts
	struct llama_model *m = L.model_load_from_file(model, mp);
	if (!m)
		fail("llama.cpp could not load the model");
	const struct llama_vocab *vocab = L.model_get_vocab(m);
	int nv = L.vocab_n_tokens(vocab);
	char desc[256] = "";
	L.model_desc(m, desc, sizeof desc);
	printf("desc=%s\n", desc);
	printf("n_vocab=%d\n", nv);
	printf("vocab_type=%d\n", L.vocab_type(vocab));
	printf("add_bos=%d\n", L.vocab_get_add_bos(vocab));

	if (prompt_file) {
		size_t len;
		char *text = read_file(prompt_file, &len);
		int cap = (int)len + 16;
		llama_token *ids = malloc(sizeof(llama_token) * cap);
		// add_special: BOS/EOS exactly as the vocabulary asks; parse_special: control tokens written in the text
		// are recognised, as llama.cpp's own tools do for a prompt (and as `tilelab logits -p` does).
		int n = L.tokenize(vocab, text, (int32_t)len, ids, cap, true, true);
		if (n < 0)
			fail("llama_tokenize failed");
		printf("llama_tokens=");
		for (int i = 0; i < n; i++)
			printf(i ? ",%d" : "%d", ids[i]);
		printf("\n");
		free(ids);
		free(text);
	}
	if (!tokens) {
		L.model_free(m);
		return 0;
	}

	llama_token ids[8192];
	int n = parse_ids(tokens, ids, 8192);
	if (n == 0)
		die("%s", "no tokens to evaluate");
	for (int i = 0; i < n; i++)
		if (ids[i] >= nv)
			die("token id out of the vocabulary: %s", tokens);

	struct context_params cp = L.context_default_params();
	if (cp.n_batch != 2048 || cp.n_ubatch != 512 || cp.n_seq_max != 1 || cp.n_threads != 4 ||
	    cp.flash_attn_type != -1 || cp.defrag_thold != -1.0f || cp.cb_eval || cp.type_k != 1 || cp.type_v != 1 ||
	    cp.abort_callback || cp.embeddings || !cp.offload_kqv || cp.kv_unified || cp.samplers || cp.n_samplers)
		die("%s", "llama_context_params defaults do not match the expected layout (wrong llama.cpp version?)");
	cp.n_ctx = (uint32_t)(n < 256 ? 256 : (n + 255) / 256 * 256);
	cp.n_threads = cp.n_threads_batch = threads;
	if (!strcmp(kv, "f32")) {
		// A float32 KV cache and no flash attention: the closest llama.cpp comes to float32 attention, so that
		// F32 models are compared without float16 rounding of K, V and Q on llama.cpp's side.
		cp.type_k = cp.type_v = 0;
		cp.flash_attn_type = 0;
	}
	char key[256], val[64];
	if (L.meta_val_str(m, "general.architecture", val, sizeof val) > 0) {
		snprintf(key, sizeof key, "%s.expert_used_count", val);
		if (L.meta_val_str(m, key, val, sizeof val) > 0)
			n_expert_used = atoi(val);
	}
	dump_dir = getenv("LLCHECK_DUMP");
	if (dump_dir || n_expert_used > 0) {
		cp.cb_eval = (void *)eval_cb;
		cp.op_offload = false;
	}
	struct llama_context *ctx = L.init_from_model(m, cp);
	if (!ctx)
		fail("llama.cpp could not create a context");
	L.set_n_threads(ctx, threads, threads);
	struct batch b = L.batch_get_one(ids, n); // logits == NULL: only the last position is output
	int rc = L.decode(ctx, b);
	if (rc != 0) {
		char msg[64];
		snprintf(msg, sizeof msg, "llama_decode returned %d", rc);
		fail(msg);
	}
	const float *lg = L.get_logits_ith(ctx, -1);
	if (!lg)
		fail("llama_get_logits_ith returned no logits");
	if (n_expert_used > 0) {
		if (router_layers_seen == 0)
			fail("a MoE model, but no ffn_moe_probs tensor was seen: cannot measure the router margin");
		printf("router_margin=%.6f\nrouter_margin_at=layer %d token %d\n", router_margin, router_layer, router_token);
		printf("router_last_margin=%.6f\nrouter_last_margin_at=layer %d\n", router_last_margin, router_last_layer);
	}
	int am = argmax(lg, nv);
	printf("llama_argmax=%d\n", am);
	for (int i = 0; i < nv; i++)
		if (!isfinite(lg[i]))
			fail("llama.cpp's logits are not finite");
	if (out) {
		FILE *f = fopen(out, "wb");
		if (!f || fwrite(lg, sizeof(float), nv, f) != (size_t)nv || fclose(f))
			die("cannot write %s", out);
	}
	if (ours) {
		size_t len;
		float *o = (float *)read_file(ours, &len);
		if (len != (size_t)nv * sizeof(float)) {
			char msg[128];
			snprintf(msg, sizeof msg, "%s has %zu logits, llama.cpp has %d", ours, len / sizeof(float), nv);
			die("%s", msg);
		}
		double dot = 0, no = 0, nl = 0, d2 = 0, maxd = 0;
		for (int i = 0; i < nv; i++) {
			double a = o[i], c = lg[i], d = a - c;
			dot += a * c;
			no += a * a;
			nl += c * c;
			d2 += d * d;
			if (fabs(d) > maxd)
				maxd = fabs(d);
		}
		printf("ours_argmax=%d\n", argmax(o, nv));
		printf("cosine=%.9f\n", dot / sqrt(no * nl));
		printf("rel_l2=%.3e\n", sqrt(d2 / nl));
		printf("max_abs_diff=%.3e\n", maxd);
		printf("llama_rms=%.4e\n", sqrt(nl / nv));
	}
	L.free_ctx(ctx);
	L.model_free(m);
	L.backend_free();
	return 0;
}
