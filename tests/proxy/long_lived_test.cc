#include "proxy/long_lived.h"

#include <gtest/gtest.h>

#include <string>

#include "tests/support/wire_frames.h"

namespace lameduck::proxy {
namespace {

using Mode = WebSocketFrames::Mode;

std::string Frame(uint8_t first, const std::string& payload) {
  return testing::ServerFrame(first, payload);
}

TEST(WebSocketFramesTest, FollowsWholeFramesOfEveryLengthEncoding) {
  for (size_t n : {0u, 5u, 125u, 126u, 300u, 65535u, 65536u, 70000u}) {
    WebSocketFrames frames;
    std::string frame = Frame(0x82, std::string(n, 'x'));
    EXPECT_EQ(frames.Follow(frame.data(), frame.size()), frame.size());
    EXPECT_TRUE(frames.at_boundary()) << n;
    EXPECT_FALSE(frames.broken());
  }
}

TEST(WebSocketFramesTest, IsInsideAFrameUntilItsLastByteWhateverTheReads) {
  std::string stream = Frame(0x81, "hello") + Frame(0x82, std::string(1000, 'y'));
  for (size_t step : {1u, 3u, 7u, 200u}) {
    WebSocketFrames frames;
    std::vector<size_t> boundaries;
    for (size_t i = 0; i < stream.size(); i += step) {
      size_t n = std::min(step, stream.size() - i);
      for (size_t j = 0; j < n; ++j) {
        frames.Follow(stream.data() + i + j, 1);
        if (frames.at_boundary()) boundaries.push_back(i + j + 1);
      }
    }
    EXPECT_EQ(boundaries, (std::vector<size_t>{7, stream.size()})) << step;
  }
}

TEST(WebSocketFramesTest, StopsRightAfterTheFirstBoundary) {
  std::string first = Frame(0x81, "one");
  std::string stream = first + Frame(0x81, "two");
  WebSocketFrames frames;
  // Before the first byte it is at a boundary: stopping there would take nothing.
  EXPECT_EQ(frames.Follow(stream.data(), stream.size(), Mode::kStopAtBoundary), 0u);
  EXPECT_EQ(frames.Follow(stream.data(), 1), 1u);
  EXPECT_EQ(frames.Follow(stream.data() + 1, stream.size() - 1, Mode::kStopAtBoundary),
            first.size() - 1);
  EXPECT_TRUE(frames.at_boundary());
  // At a boundary already: nothing more is taken.
  EXPECT_EQ(frames.Follow(stream.data() + first.size(), 3, Mode::kStopAtBoundary), 0u);
}

TEST(WebSocketFramesTest, AFragmentedMessageIsNeverCutEvenAtAControlFrame) {
  // Text fragment, a ping between the fragments, the last fragment.
  std::string a = Frame(0x01, "frag1");
  std::string ping = Frame(0x89, "p");
  std::string b = Frame(0x80, "frag2");
  std::string stream = a + ping + b;
  WebSocketFrames frames;
  frames.Follow(stream.data(), 1);
  EXPECT_EQ(frames.Follow(stream.data() + 1, stream.size() - 1, Mode::kStopAtBoundary),
            stream.size() - 1);
  EXPECT_TRUE(frames.at_boundary());
  frames = WebSocketFrames();
  frames.Follow(a.data(), a.size());
  EXPECT_FALSE(frames.at_boundary());
  frames.Follow(ping.data(), ping.size());
  EXPECT_FALSE(frames.at_boundary());
}

TEST(WebSocketFramesTest, SeesTheAppsCloseFrame) {
  std::string close = WebSocketFrames::CloseFrame(1000, "bye");
  WebSocketFrames frames;
  frames.Follow(close.data(), close.size());
  EXPECT_TRUE(frames.saw_close());
  EXPECT_TRUE(frames.at_boundary());
}

TEST(WebSocketFramesTest, WhatItCannotFollowBreaksItForGood) {
  const std::string cases[] = {
      Frame(0x83, "reserved opcode"),
      Frame(0x09, "fragmented ping"),
      Frame(0x89, std::string(126, 'p')),  // control frame over 125 bytes
      Frame(0x80, "continuation of nothing"),
      Frame(0x01, "a") + Frame(0x81, "new message inside"),
      std::string("\x82\x7f\x80\0\0\0\0\0\0\0", 10),  // 64-bit length with its top bit set
  };
  for (const std::string& stream : cases) {
    WebSocketFrames frames;
    frames.Follow(stream.data(), stream.size());
    EXPECT_TRUE(frames.broken());
    EXPECT_FALSE(frames.at_boundary());
    EXPECT_EQ(frames.Follow("\x81\x00", 2, Mode::kStopAtBoundary), 0u);
  }
}

TEST(WebSocketFramesTest, AMaskedFrameIsFollowedToo) {
  std::string frame = "\x81\x83" + std::string("abcd") + "xyz";  // mask key, 3 bytes
  WebSocketFrames frames;
  EXPECT_EQ(frames.Follow(frame.data(), frame.size()), frame.size());
  EXPECT_TRUE(frames.at_boundary());
}

TEST(WebSocketFramesTest, CloseFrameCarriesTheCodeAndAShortReason) {
  std::string frame = WebSocketFrames::CloseFrame(1001, "going away");
  ASSERT_EQ(frame.size(), 4u + 10u);
  EXPECT_EQ(static_cast<uint8_t>(frame[0]), 0x88);
  EXPECT_EQ(static_cast<uint8_t>(frame[1]), 12);
  EXPECT_EQ(static_cast<uint8_t>(frame[2]) << 8 | static_cast<uint8_t>(frame[3]), 1001);
  EXPECT_EQ(frame.substr(4), "going away");
  EXPECT_LE(WebSocketFrames::CloseFrame(1001, std::string(300, 'r')).size(), 127u);
}

using testing::GrpcMessage;

TEST(GrpcMessagesTest, FollowsLengthPrefixedMessagesAcrossReads) {
  std::string stream = GrpcMessage("one") + GrpcMessage("") + GrpcMessage(std::string(70000, 'x'));
  for (size_t step : {1u, 4u, 5u, 1000u}) {
    GrpcMessages messages;
    std::vector<size_t> boundaries;
    for (size_t i = 0; i < stream.size(); i += step) {
      size_t n = std::min(step, stream.size() - i);
      for (size_t j = 0; j < n; ++j) {
        messages.Follow(stream.data() + i + j, 1);
        if (messages.at_boundary()) boundaries.push_back(i + j + 1);
      }
    }
    EXPECT_EQ(boundaries, (std::vector<size_t>{8, 13, stream.size()})) << step;
    EXPECT_EQ(messages.messages(), 3u);
  }
}

TEST(GrpcMessagesTest, StopsAfterTheMessageInProgress) {
  std::string first = GrpcMessage("first");
  std::string stream = first + GrpcMessage("second");
  GrpcMessages messages;
  messages.Follow(stream.data(), 2);
  EXPECT_FALSE(messages.at_boundary());
  EXPECT_EQ(messages.Follow(stream.data() + 2, stream.size() - 2, Mode::kStopAtBoundary),
            first.size() - 2);
  EXPECT_TRUE(messages.at_boundary());
  EXPECT_EQ(messages.messages(), 1u);
}

TEST(SseEventsTest, ABoundaryIsAfterAnEmptyLineWhateverTheLineEndings) {
  for (std::string eol : {"\n", "\r\n", "\r"}) {
    std::string event = "id: 1" + eol + "data: a" + eol + eol;
    std::string stream = event + "data: b" + eol + eol;
    SseEvents events;
    EXPECT_TRUE(events.at_boundary());  // before the first byte
    EXPECT_EQ(events.Follow(stream.data(), 1), 1u);
    EXPECT_EQ(events.Follow(stream.data() + 1, stream.size() - 1, Mode::kStopAtBoundary),
              event.size() - 1)
        << "eol " << eol.size();
    EXPECT_TRUE(events.at_boundary());
    std::string rest = stream.substr(event.size());
    EXPECT_EQ(events.Follow(rest.data(), rest.size()), rest.size());
    EXPECT_TRUE(events.at_boundary());
  }
}

TEST(SseEventsTest, IsNotAtABoundaryInsideAnEvent) {
  std::string stream = "data: a\ndata: b\n\n";
  for (size_t cut = 1; cut < stream.size(); ++cut) {
    SseEvents events;
    events.Follow(stream.data(), cut);
    EXPECT_FALSE(events.at_boundary()) << cut;
  }
}

TEST(SseEventsTest, TheLfOfACrlfThatEndedAnEventGoesWithIt) {
  std::string stream = "data: a\r\n\r";
  SseEvents events;
  events.Follow(stream.data(), stream.size());
  EXPECT_TRUE(events.at_boundary());
  EXPECT_EQ(events.Follow("\ndata: b", 8, Mode::kStopAtBoundary), 1u);
}

TEST(SseEventsTest, CommentsAreLinesLikeAnyOther) {
  std::string stream = ": keep-alive\n\n";
  SseEvents events;
  events.Follow(stream.data(), 13);
  EXPECT_FALSE(events.at_boundary());
  events.Follow(stream.data() + 13, 1);
  EXPECT_TRUE(events.at_boundary());
}

}  // namespace
}  // namespace lameduck::proxy
