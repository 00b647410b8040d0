/*
 * Run a TVM-built kernel object (lib0.o from `kernel.export("k.tar")`) with no TVM runtime.
 *
 * Link it with the kernel's object into one static program, for any Linux CPU TVM targets:
 *
 *   aarch64-linux-gnu-gcc -O2 -static -fno-tree-vectorize \
 *       -I $TVM_FFI/include -I $TVM_FFI/include/dlpack -I $TVM/include \
 *       aarch64_harness.c lib0.o -lpthread -lm -o run_kernel
 *
 * (-fno-tree-vectorize: aarch64-linux-gnu-gcc 12 has crashed vectorizing harness loops.)
 *
 * Usage:
 *   run_kernel [-t THREADS] [-r REPEATS] [-b BITS] FILE:D0,D1,... [FILE:D0,D1,... ...]
 *
 * One FILE:SHAPE per kernel argument, in call order (input, depthwise filter, pointwise filter,
 * [bias,] output). Each file holds raw little-endian floats of BITS bits (default 32) in C order;
 * the last argument is the output, written back after the first run. With -r, the kernel runs
 * REPEATS more times and the mean time is printed as "time_ms=...". -t runs the kernel's parallel
 * loop on THREADS pthreads (default 1: serial).
 *
 * The kernel object leaves three function pointers for the runtime that loads it to fill in
 * (__TVMBackendParallelLaunch, __TVMBackendAllocWorkspace, __TVMBackendFreeWorkspace) and needs
 * one error function; this file provides all four.
 */

#include <dlpack/dlpack.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <tvm/ffi/c_api.h>
#include <tvm/runtime/c_backend_api.h>

#ifndef SEPCONV_ENTRY
#define SEPCONV_ENTRY __tvm_ffi_main /* TVM's symbol for a PrimFunc named "main" */
#endif
#define MAX_ARGS 8
#define MAX_DIMS 8
#define ALIGNMENT 64

extern int SEPCONV_ENTRY(void* self, const TVMFFIAny* args, int32_t num_args, TVMFFIAny* result);

/* ---- the runtime services the kernel object calls through its weak pointers ---------------- */

static int num_threads = 1;

typedef struct {
  FTVMParallelLambda lambda;
  void* cdata;
  int task_id;
  TVMParallelGroupEnv* env;
  int status;
} Task;

static void* run_task(void* arg) {
  Task* task = (Task*)arg;
  task->status = task->lambda(task->task_id, task->env, task->cdata);
  return NULL;
}

static int parallel_launch(FTVMParallelLambda lambda, void* cdata, int num_task) {
  /* num_task 0 means "as many as the runtime likes"; the kernel splits its loop into
   * env.num_task chunks and each task runs chunk task_id. */
  int n = num_task > 0 && num_task < num_threads ? num_task : num_threads;
  TVMParallelGroupEnv env = {NULL, n};
  Task tasks[64];
  pthread_t threads[64];
  if (n > 64) n = env.num_task = 64;
  for (int i = 0; i < n; ++i) {
    tasks[i] = (Task){lambda, cdata, i, &env, 0};
    if (i > 0 && pthread_create(&threads[i], NULL, run_task, &tasks[i]) != 0) return -1;
  }
  run_task(&tasks[0]);
  int status = tasks[0].status;
  for (int i = 1; i < n; ++i) {
    pthread_join(threads[i], NULL);
    if (tasks[i].status != 0) status = tasks[i].status;
  }
  return status;
}

static void* alloc_workspace(int device_type, int device_id, uint64_t nbytes, int dtype_code,
                             int dtype_bits) {
  (void)device_type, (void)device_id, (void)dtype_code, (void)dtype_bits;
  size_t size = (nbytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT;
  return aligned_alloc(ALIGNMENT, size ? size : ALIGNMENT);
}

static int free_workspace(int device_type, int device_id, void* ptr) {
  (void)device_type, (void)device_id;
  free(ptr);
  return 0;
}

/* Strong definitions of the object's weak pointers. */
int (*__TVMBackendParallelLaunch)(FTVMParallelLambda, void*, int) = parallel_launch;
void* (*__TVMBackendAllocWorkspace)(int, int, uint64_t, int, int) = alloc_workspace;
int (*__TVMBackendFreeWorkspace)(int, int, void*) = free_workspace;

void TVMFFIErrorSetRaisedFromCStrParts(const char* kind, const char** parts, int32_t num_parts) {
  fprintf(stderr, "kernel error: %s: ", kind ? kind : "Error");
  for (int32_t i = 0; i < num_parts; ++i) {
    if (parts[i]) fputs(parts[i], stderr);
  }
  fputc('\n', stderr);
}

/* ---- arguments: FILE:SHAPE -> an aligned DLTensor ----------------------------------------- */

typedef struct {
  const char* path;
  DLTensor tensor;
  int64_t shape[MAX_DIMS];
  size_t nbytes;
} Argument;

static int parse_argument(char* text, int bits, Argument* arg) {
  char* colon = strrchr(text, ':');
  if (!colon) return fprintf(stderr, "argument %s: expected FILE:D0,D1,...\n", text), -1;
  *colon = '\0';
  arg->path = text;
  int ndim = 0;
  size_t count = 1;
  for (char* dim = strtok(colon + 1, ","); dim; dim = strtok(NULL, ",")) {
    if (ndim == MAX_DIMS) return fprintf(stderr, "argument %s: too many dims\n", text), -1;
    arg->shape[ndim] = strtoll(dim, NULL, 10);
    if (arg->shape[ndim] <= 0) return fprintf(stderr, "argument %s: bad dim %s\n", text, dim), -1;
    count *= (size_t)arg->shape[ndim++];
  }
  arg->nbytes = count * (size_t)(bits / 8);
  void* data = aligned_alloc(ALIGNMENT, (arg->nbytes + ALIGNMENT - 1) / ALIGNMENT * ALIGNMENT);
  if (!data) return fprintf(stderr, "argument %s: out of memory\n", text), -1;
  arg->tensor = (DLTensor){.data = data,
                           .device = {kDLCPU, 0},
                           .ndim = ndim,
                           .dtype = {kDLFloat, (uint8_t)bits, 1},
                           .shape = arg->shape,
                           .strides = NULL,
                           .byte_offset = 0};
  return 0;
}

static int transfer(Argument* arg, const char* mode) {
  FILE* file = fopen(arg->path, mode);
  if (!file) return fprintf(stderr, "cannot open %s\n", arg->path), -1;
  size_t done = mode[0] == 'r' ? fread(arg->tensor.data, 1, arg->nbytes, file)
                               : fwrite(arg->tensor.data, 1, arg->nbytes, file);
  fclose(file);
  if (done != arg->nbytes) {
    return fprintf(stderr, "%s: %zu of %zu bytes\n", arg->path, done, arg->nbytes), -1;
  }
  return 0;
}

static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

int main(int argc, char** argv) {
  int repeats = 0, bits = 32, opt;
  while ((opt = getopt(argc, argv, "t:r:b:")) != -1) {
    if (opt == 't') num_threads = atoi(optarg) > 0 ? atoi(optarg) : 1;
    else if (opt == 'r') repeats = atoi(optarg);
    else if (opt == 'b') bits = atoi(optarg);
    else return fprintf(stderr, "usage: %s [-t THREADS] [-r REPEATS] [-b BITS] FILE:SHAPE...\n",
                        argv[0]), 2;
  }
  int num_args = argc - optind;
  if (num_args < 2 || num_args > MAX_ARGS || (bits != 16 && bits != 32 && bits != 64)) {
    return fprintf(stderr, "expected 2 to %d FILE:SHAPE arguments, bits 16/32/64\n", MAX_ARGS), 2;
  }
  Argument args[MAX_ARGS];
  TVMFFIAny packed[MAX_ARGS];
  for (int i = 0; i < num_args; ++i) {
    if (parse_argument(argv[optind + i], bits, &args[i]) != 0) return 2;
    if (i < num_args - 1 && transfer(&args[i], "rb") != 0) return 2;
    memset(&packed[i], 0, sizeof(packed[i]));
    packed[i].type_index = kTVMFFIDLTensorPtr;
    packed[i].v_ptr = &args[i].tensor;
  }
  TVMFFIAny result;
  memset(&result, 0, sizeof(result));
  int rc = SEPCONV_ENTRY(NULL, packed, num_args, &result);
  printf("rc=%d\n", rc);
  if (rc != 0) return 1;
  if (transfer(&args[num_args - 1], "wb") != 0) return 2;
  if (repeats > 0) {
    double start = now_ms();
    for (int i = 0; i < repeats; ++i) SEPCONV_ENTRY(NULL, packed, num_args, &result);
    printf("time_ms=%.6f threads=%d\n", (now_ms() - start) / repeats, num_threads);
  }
  return 0;
}
