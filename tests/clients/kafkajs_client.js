// kafkajs (pure JavaScript, npm) against a broker: `node kafkajs_client.js BOOTSTRAP SCENARIO`.
//
// Prints one JSON object per line on stdout (what tests/kafka_clients.rs checks); logs on stderr.
// Scenarios (the same in every client's script):
//   roundtrip  creates topic "keyed" (3 partitions) through the admin API, produces 1,000 keyed
//              messages, consumes them back as group "keyed-group", commits, leaves.
//   rebalance  creates topic "churn" (6 partitions); two members of group "churn-group" consume
//              while 20,000 messages are produced; a third member joins a third of the way in.
//              kafkajs has no revoke callback: with autoCommit it commits what it has processed
//              after every batch and, when a heartbeat learns of a rebalance, before it rejoins.
'use strict'

const { Kafka, Partitioners, logLevel } = require('kafkajs')

const [bootstrap, scenario] = process.argv.slice(2)
const emit = fields => process.stdout.write(JSON.stringify(fields) + '\n')
const sleep = ms => new Promise(resolve => setTimeout(resolve, ms))

const kafka = new Kafka({
  clientId: 'kafkajs',
  brokers: [bootstrap],
  logLevel: logLevel.WARN,
  // Everything on stderr; a commit the broker refused is also reported on stdout, since kafkajs
  // only logs it (after each batch and before it rejoins, autoCommit's failures are retried or
  // dropped, never returned to us).
  logCreator: () => ({ namespace, label, log }) => {
    process.stderr.write(`${label} ${namespace} ${JSON.stringify(log)}\n`)
    if (/^Response OffsetCommit/.test(log.message || '')) {
      emit({ event: 'commit_refused', error: String(log.error) })
    }
  },
})

async function createTopic(topic, numPartitions) {
  const admin = kafka.admin()
  await admin.connect()
  const created = await admin.createTopics({ topics: [{ topic, numPartitions }], waitForLeaders: true })
  await admin.disconnect()
  emit({ event: 'created', topic, partitions: numPartitions, created })
}

function consumer(groupId) {
  // A short long poll, so that disconnect() (which waits for the fetch under way) is quick.
  return kafka.consumer({
    groupId,
    sessionTimeout: 6000,
    heartbeatInterval: 200,
    rebalanceTimeout: 10000,
    maxWaitTimeInMs: 500,
  })
}

// Kafka's Java partitioner (murmur2), kafkajs's default since 2.0, named to silence its warning.
const newProducer = () => kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner })

async function roundtrip() {
  await createTopic('keyed', 3)
  const producer = newProducer()
  await producer.connect()
  // One message per send, each awaited: the order of production is the order of the offsets,
  // and each reply names its partition and offset.
  for (let n = 0; n < 1000; n++) {
    const [reply] = await producer.send({
      topic: 'keyed',
      acks: -1,
      messages: [{ key: `key-${n % 20}`, value: `${n}` }],
    })
    emit({ event: 'produced', value: `${n}`, partition: reply.partition, offset: Number(reply.baseOffset) })
  }
  await producer.disconnect()

  const member = consumer('keyed-group')
  await member.connect()
  await member.subscribe({ topic: 'keyed', fromBeginning: true })
  let received = 0
  let finished
  const all = new Promise(resolve => { finished = resolve })
  await member.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      emit({
        event: 'consumed',
        key: message.key.toString(),
        value: message.value.toString(),
        partition,
        offset: Number(message.offset),
      })
      // What is committed is the next offset to read, per partition, as Kafka's clients do.
      await member.commitOffsets([{ topic: 'keyed', partition, offset: `${Number(message.offset) + 1}` }])
      if (++received === 1000) finished()
    },
  })
  await Promise.race([all, sleep(60000)])
  emit({ event: 'committed' })
  await member.disconnect()
}

async function rebalance() {
  const total = 20000
  await createTopic('churn', 6)
  const seen = new Set()
  const assigned = {}
  let finished
  const all = new Promise(resolve => { finished = resolve })
  const members = []

  async function startMember(name) {
    const member = consumer('churn-group')
    member.on(member.events.GROUP_JOIN, ({ payload }) => {
      const partitions = (payload.memberAssignment.churn || []).slice().sort((a, b) => a - b)
      assigned[name] = partitions.length
      emit({ event: 'assigned', member: name, partitions })
    })
    member.on(member.events.REBALANCING, () => emit({ event: 'rebalancing', member: name, commit: 'auto' }))
    member.on(member.events.CRASH, ({ payload }) =>
      emit({ event: 'crashed', member: name, error: String(payload.error) }))
    await member.connect()
    await member.subscribe({ topic: 'churn', fromBeginning: true })
    await member.run({
      autoCommit: true,
      eachMessage: async ({ partition, message }) => {
        const value = message.value.toString()
        emit({ event: 'consumed', member: name, value, partition, offset: Number(message.offset) })
        seen.add(value)
        if (seen.size === total) finished()
      },
    })
    members.push([name, member])
  }

  await startMember('m1')
  await startMember('m2')
  const ready = Date.now() + 30000
  while (!(assigned.m1 && assigned.m2) && Date.now() < ready) await sleep(50)
  emit({ event: 'members_ready', members: 2, ready: Boolean(assigned.m1 && assigned.m2) })

  const producer = newProducer()
  await producer.connect()
  // 20,000 messages over about 4 s, so the group consumes while they arrive.
  for (let from = 0; from < total; from += 500) {
    const messages = []
    for (let n = from; n < from + 500; n++) messages.push({ key: `key-${n % 100}`, value: `${n}` })
    await producer.send({ topic: 'churn', acks: -1, messages })
    if (from <= total / 3 && total / 3 < from + 500) {
      emit({ event: 'joining', member: 'm3', produced: from + 500 })
      startMember('m3')
    }
    await sleep(100)
  }
  await producer.disconnect()
  emit({ event: 'produced', count: total })
  await Promise.race([all, sleep(120000)])
  // disconnect() stops fetching, commits what was processed (autoCommit) and leaves the group.
  await Promise.all(members.map(async ([name, member]) => {
    await member.disconnect()
    emit({ event: 'closed', member: name, commit: 'auto' })
  }))
  emit({ event: 'done', distinct: seen.size })
}

const scenarios = { roundtrip, rebalance }
scenarios[scenario]().then(
  () => process.exit(0),
  error => {
    process.stderr.write(`${error.stack}\n`)
    process.exit(1)
  }
)
