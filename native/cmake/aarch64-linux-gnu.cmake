# Cross build for 64-bit Arm Linux with Debian's/Ubuntu's g++-aarch64-linux-gnu; run the results
# under qemu-user: `qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu max native/build-arm64/kernel_check`.
#   cmake -S native -B native/build-arm64 -DCMAKE_TOOLCHAIN_FILE=native/cmake/aarch64-linux-gnu.cmake \
#         -DINTERNLM_ADDON=OFF -DINTERNLM_CUDA=OFF
#   cmake --build native/build-arm64 --target kernel_check
# AARCH64_TRIPLE / AARCH64_SYSROOT override the compiler prefix and the target root.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

if(NOT AARCH64_TRIPLE)
  set(AARCH64_TRIPLE aarch64-linux-gnu)
endif()
if(NOT AARCH64_SYSROOT)
  set(AARCH64_SYSROOT /usr/${AARCH64_TRIPLE})
endif()
set(CMAKE_C_COMPILER ${AARCH64_TRIPLE}-gcc)
set(CMAKE_CXX_COMPILER ${AARCH64_TRIPLE}-g++)

# Libraries and headers from the target root only; programs (cmake's helpers) from the host.
set(CMAKE_FIND_ROOT_PATH ${AARCH64_SYSROOT})
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# try_run and the tools run through qemu when cmake needs to execute a target binary.
find_program(QEMU_AARCH64 qemu-aarch64)
if(QEMU_AARCH64)
  set(CMAKE_CROSSCOMPILING_EMULATOR ${QEMU_AARCH64} -L ${AARCH64_SYSROOT})
endif()
