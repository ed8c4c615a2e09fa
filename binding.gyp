{
  "targets": [
    {
      "target_name": "msockets",
      "sources": [
        "native/binding/addon.cc",
        "native/binding/kernel_socket.cc",
        "native/binding/user_stack.cc",
        "native/binding/netns.cc",
        "native/kernel/netns_helper.cc",
        "<!@(find native/engine native/link -name '*.cc' | sort)"
      ],
      "include_dirs": [
        "<!(node -p \"require('node-addon-api').include_dir\")",
        "native"
      ],
      "defines": ["NAPI_VERSION=8", "NODE_ADDON_API_DISABLE_DEPRECATED"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc": ["-std=c++17", "-O2", "-fexceptions", "-Wall", "-Wno-unused-parameter"],
      "cflags": ["-O2"],
      "ldflags": ["-Wl,-z,now"]
    }
  ]
}
